//go:build !unix

package queue

// releaseMapped is a no-op where madvise is not available: the store's
// mapped pages stay in the resident set until the kernel reclaims them.
func (q *Queue) releaseMapped() {}
