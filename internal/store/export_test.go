package store

// LiveWatchers returns how many watchers have finished replay and receive
// live events (for tests that need a watcher to be live before writing).
func LiveWatchers(s *Local) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}
