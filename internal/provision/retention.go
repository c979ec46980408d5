package provision

import (
	"context"
	"fmt"
	"time"
)

// DefaultOperationRetention is how long an operation is kept after it
// ended. Azure DPS keeps operation status only briefly too; a device polls
// every few seconds and collects its answer within minutes, and a day
// still covers a device that was switched off overnight after its
// approval, and lets operators see the day's decisions.
const DefaultOperationRetention = 24 * time.Hour

// PurgeBatch is the most operations one delete statement removes, so a
// large backlog never holds the store's single writer for long.
const PurgeBatch = 500

// PurgeOperations deletes the operations that ended more than retention
// ago (DefaultOperationRetention when retention <= 0) and returns how many
// it deleted. An operation ends at its expiry: a pending one nobody decided
// expires then, a rejected one was decided before it, and an approved one
// expires OperationTTL after its approval, so a completed operation, and an
// approved one whose device never came to collect its registration token,
// go a retention after that. Pending operations that have not expired are
// never deleted.
func (s *Service) PurgeOperations(ctx context.Context, retention time.Duration) (int64, error) {
	if retention <= 0 {
		retention = DefaultOperationRetention
	}
	cutoff := s.now().Add(-retention)
	var total int64
	for {
		n, err := s.store.PurgeOperations(ctx, cutoff, PurgeBatch)
		total += n
		if err != nil {
			return total, fmt.Errorf("provision: purge operations ended before %s: %w", cutoff.Format(time.RFC3339), err)
		}
		if n < PurgeBatch {
			break
		}
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("provision: purge operations: %w", err)
		}
	}
	if total > 0 {
		s.log.Info("provisioning operations purged", "count", total, "endedBefore", cutoff)
	}
	return total, nil
}
