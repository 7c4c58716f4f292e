package limits

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultIdle is how long a user's admission state outlives its last
// request (at least until its token bucket is full again, so that dropping
// the state forgets nothing).
const DefaultIdle = 5 * time.Minute

// Registry holds the admission state of the active users. It is safe for
// concurrent use.
type Registry struct {
	idle time.Duration
	now  func() time.Time

	mu        sync.Mutex
	tenants   map[tenantKey]*tenant
	lastSweep time.Time
}

type tenantKey struct{ user, limits string }

type tenant struct {
	limiter *rate.Limiter // nil: no rate limit
	slots   chan struct{} // nil: no concurrency limit
	// Guarded by Registry.mu.
	lastUse  time.Time
	inFlight int
	refill   time.Duration // time for an empty bucket to fill
}

// NewRegistry returns a Registry dropping users idle for idle (DefaultIdle
// when 0).
func NewRegistry(idle time.Duration) *Registry {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Registry{idle: idle, now: time.Now, tenants: map[tenantKey]*tenant{}}
}

// Len is the number of users with state, for tests and metrics.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tenants)
}

// Admit lets a request of user in under l, or refuses it with an *Error of
// kind TooMany. A request over the concurrency limit waits up to
// l.MaxQueueWait (or until ctx ends) for a slot. The caller must call
// release once the request is done.
func (r *Registry) Admit(ctx context.Context, user string, l *Limits) (release func(), err error) {
	if !l.Admission() {
		return func() {}, nil
	}
	now := r.now()
	t := r.acquire(tenantKey{user, l.ID}, l, now)
	done := func() { r.release(t) }

	if t.limiter != nil {
		res := t.limiter.ReserveN(now, 1)
		if d := res.DelayFrom(now); !res.OK() || d > 0 {
			res.CancelAt(now)
			done()
			if !res.OK() {
				d = time.Second
			}
			return nil, &Error{Kind: TooMany, Limit: "rate", RetryAfter: d,
				Msg: fmt.Sprintf("too many requests: user %q is over its rate limit of %g requests per second (burst %d); retry after %s", user, l.Rate, t.limiter.Burst(), d.Round(time.Millisecond))}
		}
	}
	if t.slots != nil {
		select {
		case t.slots <- struct{}{}:
		default:
			if err := wait(ctx, t.slots, l.MaxQueueWait); err != nil {
				done()
				return nil, &Error{Kind: TooMany, Limit: "max_concurrent", RetryAfter: time.Second,
					Msg: fmt.Sprintf("too many concurrent requests: user %q already has %d requests in flight (max_concurrent %d, waited %s)", user, l.MaxConcurrent, l.MaxConcurrent, FormatDuration(l.MaxQueueWait))}
			}
		}
		return func() { <-t.slots; done() }, nil
	}
	return done, nil
}

// wait takes a slot within d, or fails.
func wait(ctx context.Context, slots chan struct{}, d time.Duration) error {
	if d <= 0 {
		return context.DeadlineExceeded
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-timer.C:
		return context.DeadlineExceeded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acquire returns the user's state, made if need be, marked in use. It
// sweeps idle users now and then: the sweep costs one pass over the
// active users per half idle period.
func (r *Registry) acquire(k tenantKey, l *Limits, now time.Time) *tenant {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSweep) >= r.idle/2 {
		r.sweepLocked(now)
	}
	t, ok := r.tenants[k]
	if !ok {
		t = &tenant{}
		if l.Rate > 0 {
			burst := l.Burst
			if burst <= 0 {
				burst = max(1, int(l.Rate+0.999999))
			}
			t.limiter = rate.NewLimiter(rate.Limit(l.Rate), burst)
			t.refill = time.Duration(float64(burst) / l.Rate * float64(time.Second))
		}
		if l.MaxConcurrent > 0 {
			t.slots = make(chan struct{}, l.MaxConcurrent)
		}
		r.tenants[k] = t
	}
	t.inFlight++
	t.lastUse = now
	return t
}

func (r *Registry) release(t *tenant) {
	r.mu.Lock()
	t.inFlight--
	t.lastUse = r.now()
	r.mu.Unlock()
}

// sweepLocked drops the users with nothing in flight, idle longer than the
// idle period and than their bucket takes to fill.
func (r *Registry) sweepLocked(now time.Time) {
	r.lastSweep = now
	for k, t := range r.tenants {
		if t.inFlight == 0 && now.Sub(t.lastUse) >= max(r.idle, t.refill) {
			delete(r.tenants, k)
		}
	}
}
