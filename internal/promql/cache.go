package promql

import (
	"sync"
	"sync/atomic"
)

// Dashboards send the same queries over and over, only their time
// parameters change; parsing, rewriting and printing PromQL is most of
// promgate's own CPU on a small query. Rewritten queries are therefore
// remembered, per Enforcer (the rewrite depends only on the policy and the
// query text). Memory is bounded for all Enforcers together: entries live in
// two generations; when the current one is full it becomes the previous one
// and the oldest is dropped, so entries in use stay and the Enforcers of an
// old configuration age out.

// Bounds of the cache, for all Enforcers together.
const (
	cacheGenerationBytes = 4 << 20
	maxCachedQueryBytes  = 16 << 10
)

var enforcerIDs atomic.Uint64

type cacheKey struct {
	enforcer uint64
	query    string
}

type queryCache struct {
	mu        sync.Mutex
	cur, prev map[cacheKey][]string
	curBytes  int
	// hits and misses are counted outside the lock, for the cache's
	// hit ratio in promgate's metrics.
	hits, misses atomic.Uint64
}

var rewrites = &queryCache{cur: map[cacheKey][]string{}}

// CacheStats returns how many rewrites were found in the cache and how
// many were not, since the process started (all Enforcers together).
func CacheStats() (hits, misses uint64) {
	return rewrites.hits.Load(), rewrites.misses.Load()
}

func (c *queryCache) get(k cacheKey) ([]string, bool) {
	v, ok := c.lookup(k)
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return v, ok
}

func (c *queryCache) lookup(k cacheKey) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.prev[k]
	if ok {
		c.addLocked(k, v)
	}
	return v, ok
}

func (c *queryCache) put(k cacheKey, v []string) {
	if len(k.query) > maxCachedQueryBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(k, v)
}

func (c *queryCache) addLocked(k cacheKey, v []string) {
	size := len(k.query) + 64
	for _, s := range v {
		size += len(s) + 16
	}
	if c.curBytes+size > cacheGenerationBytes {
		c.prev, c.cur, c.curBytes = c.cur, map[cacheKey][]string{}, 0
	}
	c.cur[k] = v
	c.curBytes += size
}
