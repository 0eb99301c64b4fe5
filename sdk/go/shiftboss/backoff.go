package shiftboss

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is the wait before retry number try (0 for the first): initial doubling per
// try up to ceiling, with "equal jitter" (between half and all of it), so that it is
// never zero and workers retrying the same outage never move in lockstep.
func backoff(initial, ceiling time.Duration, try int) time.Duration {
	d := initial << min(try, 30)
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
