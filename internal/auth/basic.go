package auth

import (
	"encoding/binary"
	"hash"

	"golang.org/x/crypto/bcrypt"
)

// verify checks a user's password.
//
// Why the success cache is safe:
//   - Only successes are cached, so a guess is always checked by bcrypt and
//     guessing costs an attacker as much as without the cache.
//   - The key is HMAC-SHA256 under a random per-process key of the user, the
//     password and the stored hash, each length-prefixed so that no two
//     different triples frame to the same bytes. Without the HMAC key no one
//     can build a key that hits, not even with the hash in hand (the hash is
//     not the password, and the key needs both). Entries for another user or
//     for an old hash can never match, so a reload that changes a hash
//     invalidates them without any bookkeeping.
//   - The cache stores MACs, never passwords, so a memory dump of it is
//     useless offline.
//   - Lookup compares MACs, not secrets. The map's comparison is not
//     constant-time, but the MAC of each guess is unpredictable without the
//     key, and changes entirely with any change of the guess, so timing
//     tells nothing that helps build the next guess.
//   - It is bounded: when full, one arbitrary entry is evicted (map
//     iteration starts at a random place), so it cannot grow without limit
//     whatever the number of users.
func (a *Authenticator) verify(user, pass string) bool {
	stored, known := a.users[user]
	if !known {
		// Spend the same time as a known user, and fail.
		_ = a.compare(a.dummyHash, pass)
		return false
	}
	key := a.cacheKey(user, pass, stored)
	a.mu.Lock()
	_, hit := a.cache[key]
	a.mu.Unlock()
	if hit {
		return true
	}
	if !a.compare(stored, pass) {
		return false
	}
	a.mu.Lock()
	if _, present := a.cache[key]; !present {
		if len(a.cache) >= maxCacheEntries {
			for k := range a.cache {
				delete(a.cache, k)
				break
			}
		}
		a.cache[key] = struct{}{}
	}
	a.mu.Unlock()
	return true
}

// compare runs bcrypt, which compares in constant time.
func (a *Authenticator) compare(hash []byte, pass string) bool {
	a.bcryptRuns.Add(1)
	return bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
}

func (a *Authenticator) cacheKey(user, pass string, stored []byte) cacheKey {
	m := a.macs.Get().(hash.Hash)
	m.Reset()
	var n [8]byte
	for _, part := range [][]byte{[]byte(user), []byte(pass), stored} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write(part)
	}
	var k cacheKey
	m.Sum(k[:0])
	a.macs.Put(m)
	return k
}
