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
	time     *timeBucket   // nil: no upstream time limit
}

// timeBucket is a user's saved upstream time, in seconds: it fills at rate
// up to burst and is drawn on by each request's time in flight. What a
// request costs is known only when it ends, so the balance may go below
// zero (a debt the user waits out); requests still running count against
// it as they go, so a user cannot start more while one query runs long.
type timeBucket struct {
	rate, burst float64
	balance     float64   // at at, running requests not counted
	at          time.Time // of balance
	running     int
	startSum    float64 // of the running requests' starts, seconds since at0
	at0         time.Time
}

// fill brings the balance up to now.
func (b *timeBucket) fill(now time.Time) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.balance = min(b.burst, b.balance+d*b.rate)
		b.at = now
	}
}

// level is the balance at now less the time the running requests have
// taken so far.
func (b *timeBucket) level(now time.Time) float64 {
	b.fill(now)
	return b.balance - (float64(b.running)*now.Sub(b.at0).Seconds() - b.startSum)
}

func (b *timeBucket) start(now time.Time) {
	b.running++
	b.startSum += now.Sub(b.at0).Seconds()
}

// end charges a request that started at start.
func (b *timeBucket) end(start, now time.Time) {
	b.running--
	b.startSum -= start.Sub(b.at0).Seconds()
	b.fill(now)
	b.balance -= now.Sub(start).Seconds()
}

// full reports whether the bucket is full at now with nothing running:
// dropping it then forgets nothing.
func (b *timeBucket) full(now time.Time) bool {
	return b.running == 0 && b.balance+now.Sub(b.at).Seconds()*b.rate >= b.burst
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
	t, level := r.acquire(tenantKey{user, l.ID}, l, now)
	done := func() { r.release(t) }

	// Checked first: it takes nothing, and a request it refuses should
	// not use up a token of the rate.
	if level <= 0 {
		done()
		return nil, timeError(user, l, level)
	}
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
	}
	if t.time == nil {
		if t.slots != nil {
			return func() { <-t.slots; done() }, nil
		}
		return done, nil
	}
	// The time is counted from when the request may go upstream, not
	// while it waits in the queue; checked again then, since the time
	// may have run out meanwhile.
	start, level := r.startTimed(t)
	if level <= 0 {
		if t.slots != nil {
			<-t.slots
		}
		done()
		return nil, timeError(user, l, level)
	}
	return func() {
		r.endTimed(t, start)
		if t.slots != nil {
			<-t.slots
		}
		done()
	}, nil
}

func timeError(user string, l *Limits, level float64) *Error {
	d := time.Duration(-level / l.UpstreamTime * float64(time.Second))
	return &Error{Kind: TooMany, Limit: "upstream_time", RetryAfter: d,
		Msg: fmt.Sprintf("too much upstream time: user %q has used its share of %g seconds of upstream time per second (upstream_time_burst %s); retry after %s", user, l.UpstreamTime, FormatDuration(l.TimeBurst()), d.Round(time.Millisecond))}
}

// startTimed starts charging a request's time, unless the user's time has
// run out (level <= 0).
func (r *Registry) startTimed(t *tenant) (time.Time, float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	level := t.time.level(now)
	if level > 0 {
		t.time.start(now)
	}
	return now, level
}

func (r *Registry) endTimed(t *tenant, start time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t.time.end(start, r.now())
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

// acquire returns the user's state, made if need be, marked in use, and
// the level of its upstream time (1 when not limited). It sweeps idle
// users now and then: the sweep costs one pass over the active users per
// half idle period.
func (r *Registry) acquire(k tenantKey, l *Limits, now time.Time) (*tenant, float64) {
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
		if l.UpstreamTime > 0 {
			burst := l.TimeBurst().Seconds()
			t.time = &timeBucket{rate: l.UpstreamTime, burst: burst, balance: burst, at: now, at0: now}
		}
		r.tenants[k] = t
	}
	t.inFlight++
	t.lastUse = now
	level := 1.0
	if t.time != nil {
		level = t.time.level(now)
	}
	return t, level
}

func (r *Registry) release(t *tenant) {
	r.mu.Lock()
	t.inFlight--
	t.lastUse = r.now()
	r.mu.Unlock()
}

// sweepLocked drops the users with nothing in flight, idle longer than the
// idle period and than their buckets take to fill.
func (r *Registry) sweepLocked(now time.Time) {
	r.lastSweep = now
	for k, t := range r.tenants {
		if t.inFlight == 0 && now.Sub(t.lastUse) >= max(r.idle, t.refill) && (t.time == nil || t.time.full(now)) {
			delete(r.tenants, k)
		}
	}
}
