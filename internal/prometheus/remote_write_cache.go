package prometheus

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"github.com/promgate/promgate/internal/promql"
)

// Agents send the same series in every batch, and the decision on a
// series' labels (well formed, within the WriteLimits, inside the policy)
// is most of promgate's work on a remote write. Series accepted are
// therefore remembered, by the exact bytes that determine the decision:
//
//   - the Enforcer's ID (a new policy, or the same rebuilt on reload, has
//     a new one: its entries are never found again and age out) and the
//     limits the labels were held to;
//   - remote write 1.0: the bytes of the series' label fields, in order
//     (the labels are read from them and nothing else);
//   - remote write 2.0: the strings its label references resolve to, in
//     order, and its metadata's type and unit (a series is also decided
//     on with them as labels, see checkTypeAndUnit).
//
// Every part is length-prefixed, so two keys are equal only when all
// their parts are: the same key means the same labels, hence the same
// decision; a series differing by one byte is decided on anew. It is
// exact, not a hash. Only acceptances are remembered: a refused series
// is decided on (and its refusal worded) every time.
//
// Everything else in a request (its structure, unknown fields, samples,
// exemplars, metadata references) is checked on every request, cached or
// not.
//
// Memory is bounded for all policies together: entries live in two
// generations; when the current one holds seriesCacheGenerationBytes, it
// becomes the previous one and the oldest is dropped; an entry found in
// the previous generation is moved back to the current one, so series in
// use stay. Keys longer than maxCachedSeriesKey are not remembered.
const (
	seriesCacheGenerationBytes = 8 << 20
	maxCachedSeriesKey         = 4 << 10
	// seriesEntryOverhead is what an entry costs beyond its key's bytes
	// (string header, map slot), roughly.
	seriesEntryOverhead = 48
)

// Kinds of keys, their first byte.
const (
	seriesKeyV1 = 1
	seriesKeyV2 = 2
)

type seriesCache struct {
	mu        sync.RWMutex
	cur, prev map[string]struct{}
	curBytes  int
	// arena holds the bytes of the keys of cur, in chunks of
	// arenaChunk: one allocation for hundreds of keys rather than one
	// each. A chunk lives as long as a key in it.
	arena []byte
}

const arenaChunk = 64 << 10

// acceptedSeries is the cache of all policies.
var acceptedSeries = newSeriesCache()

func newSeriesCache() *seriesCache { return &seriesCache{cur: map[string]struct{}{}} }

// has reports whether the series of key was accepted (and keeps it).
func (c *seriesCache) has(key []byte) bool {
	c.mu.RLock()
	_, ok := c.cur[string(key)]
	old := false
	if !ok {
		_, old = c.prev[string(key)]
	}
	c.mu.RUnlock()
	if old {
		c.add(key)
	}
	return ok || old
}

// add remembers the series of key as accepted.
func (c *seriesCache) add(key []byte) {
	if len(key) > maxCachedSeriesKey {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[string(key)]; ok {
		return
	}
	size := len(key) + seriesEntryOverhead
	if c.curBytes+size > seriesCacheGenerationBytes {
		c.prev, c.cur, c.curBytes = c.cur, make(map[string]struct{}, len(c.cur)), 0
		c.arena = nil
	}
	if len(c.arena)+len(key) > cap(c.arena) {
		c.arena = make([]byte, 0, max(arenaChunk, len(key)))
	}
	start := len(c.arena)
	c.arena = append(c.arena, key...)
	// The arena's bytes are never written again.
	c.cur[unsafe.String(&c.arena[start], len(key))] = struct{}{}
	c.curBytes += size
}

// len is the number of series remembered (both generations; one in both
// counts twice).
func (c *seriesCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cur) + len(c.prev)
}

// seriesKey begins, in b, the key of a series of kind decided on by enf
// within lim; parts counts the parts that follow. A nil Enforcer has no
// cache (false).
func seriesKey(b []byte, kind byte, enf *promql.Enforcer, lim WriteLimits, parts int) ([]byte, bool) {
	if enf == nil {
		return b[:0], false
	}
	b = append(b[:0], kind)
	b = binary.AppendUvarint(b, enf.ID())
	b = binary.AppendUvarint(b, uint64(lim.MaxLabelsPerSeries))
	b = binary.AppendUvarint(b, uint64(lim.MaxLabelNameLength))
	b = binary.AppendUvarint(b, uint64(lim.MaxLabelValueLength))
	b = binary.AppendUvarint(b, uint64(parts))
	return b, true
}

// appendKeyPart appends one part of a key, length-prefixed.
func appendKeyPart[T ~string | ~[]byte](b []byte, p T) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}
