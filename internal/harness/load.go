package harness

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load sends GET / requests for an app through the daemon's proxy from
// several workers, each on its own keep-alive connection, until Finish (or
// a cap of 3 minutes and 100k requests per worker), counting failures.
type Load struct {
	sent, failed atomic.Int64
	mu           sync.Mutex // guards errs
	errs         map[string]int
	stop         chan struct{}
	wg           sync.WaitGroup
}

// StartLoad starts workers request loops against app.
func (d *Daemon) StartLoad(app string, workers int) *Load {
	l := &Load{stop: make(chan struct{}), errs: map[string]int{}}
	deadline := time.Now().Add(3 * time.Minute)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 20 * time.Second}
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", d.HTTP+"/", nil)
				req.Host = app + ".test.internal"
				l.sent.Add(1)
				resp, err := c.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.fail(fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b))))
				}
			}
		}()
	}
	return l
}

func (l *Load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	l.errs[msg]++
	l.mu.Unlock()
}

// Finish stops the load and returns what was sent, what failed, and up to
// five distinct failure messages.
func (l *Load) Finish() (sent, failed int64, errs []string) {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for m, n := range l.errs {
		if len(errs) == 5 {
			break
		}
		errs = append(errs, fmt.Sprintf("%dx %s", n, m))
	}
	return l.sent.Load(), l.failed.Load(), errs
}
