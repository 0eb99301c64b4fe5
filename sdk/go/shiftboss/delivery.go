package shiftboss

import (
	"errors"
	"net/http"
	"time"
)

// deliver sends the attempt's report until an answer settles it, re-sending with
// exponential backoff and jitter while the operator is away, for up to
// Config.OutcomeRetry. The attempt stays in every heartbeat meanwhile, so its lease
// holds. 404 worker_not_registered (the operator restarted) registers again first.
func (w *Worker) deliver(at *attempt, out outcome) {
	defer w.forget(at)
	log := w.attemptLog(at).With("report", out.kind())
	giveUp := time.Now().Add(w.Config.OutcomeRetry)
	for try := 0; ; try++ {
		if at.isAbandoned() {
			log.Info("abandoned by the operator: not reported")
			return
		}
		sent := time.Now()
		err := w.Client.sendOutcome(w.bg, at.id(), out, 0)
		switch fate := reportFate(err); fate {
		case reportSettled:
			if err != nil {
				log.Info("the operator had already decided the attempt: nothing more to report", "answer", err)
			}
			return
		case reportRefused:
			log.Error("the operator refused the report: dropped", "error", err)
			return
		case reportReregister:
			w.reregister(w.bg, sent)
		}
		wait := backoff(w.t.outcomeInitial, w.t.outcomeMax, try)
		if time.Now().Add(wait).After(giveUp) {
			log.Error("giving up reporting the outcome", "outcome_retry", w.Config.OutcomeRetry, "tries", try+1, "error", err)
			return
		}
		log.Warn("could not report the outcome; retrying", "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-at.dropped:
		}
	}
}

type reportAnswer int

const (
	reportRetry      reportAnswer = iota // no answer, 5xx or 429: send it again
	reportSettled                        // accepted, or the operator decided otherwise
	reportReregister                     // the operator forgot this worker
	reportRefused                        // another 4xx: sending it again cannot help
)

// reportFate classifies the answer to an outcome report (docs/worker-protocol.md,
// "Outcomes"): 2xx, 409 (not current), 404 unknown_attempt and 413 (the operator
// failed the attempt itself) settle it.
func reportFate(err error) reportAnswer {
	var pe *ProtocolError
	switch {
	case err == nil:
		return reportSettled
	case errors.Is(err, ErrUnavailable) || !errors.As(err, &pe):
		return reportRetry // includes a token file that cannot be read just now
	case pe.Status >= 200 && pe.Status < 300: // answered, with a body we could not read
		return reportSettled
	case errors.Is(err, ErrNotCurrent), errors.Is(err, ErrUnknownAttempt), pe.Status == http.StatusRequestEntityTooLarge:
		return reportSettled
	case errors.Is(err, ErrWorkerNotRegistered):
		return reportReregister
	case pe.Status >= 400 && pe.Status < 500:
		return reportRefused
	}
	return reportRetry
}
