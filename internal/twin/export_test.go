package twin

// Queued returns the number of reported patches waiting for a batch.
func Queued(s *Service) int {
	if s.batch == nil {
		return 0
	}
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	return len(s.batch.queue)
}
