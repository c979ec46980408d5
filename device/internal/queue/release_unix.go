//go:build unix

package queue

import (
	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseMapped tells the kernel that the process no longer needs the
// store file's pages it has touched through bbolt's read-only shared
// mapping. They stay in the page cache (a later read faults them back in
// without I/O) but leave the process's resident set: a drain reads every
// page of a large backlog once, which would otherwise count the whole file
// in RSS. It runs inside a read transaction, which holds bbolt's mmap lock,
// so the mapping cannot be replaced meanwhile.
func (q *Queue) releaseMapped() {
	_ = q.db.View(func(tx *bbolt.Tx) error {
		data, size := tx.DB().Info().Data, tx.Size()
		if data == 0 || size <= 0 {
			return nil
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED)
		if errno != 0 {
			// Only memory use is at stake; the data is untouched.
			q.opts.Logger.Debug("queue: madvise failed", "path", q.path, "err", errno)
		}
		return nil
	})
}
