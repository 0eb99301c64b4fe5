package shiftboss

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TokenSource returns the bearer token; it is called before every request.
type TokenSource func() (string, error)

// Client speaks the worker protocol to the operator.
//
// Transport errors, 5xx and 429 answers are retried Retries times with exponential
// backoff and jitter (Heartbeat and Progress are tried once), then reported as an
// *UnavailableError (errors.Is ErrUnavailable). Other error answers are a
// *ProtocolError at once. A Client is safe for concurrent use.
type Client struct {
	BaseURL        string        // the operator's worker API, e.g. http://host:8081
	Token          TokenSource   // nil sends no Authorization header
	HTTPClient     *http.Client  // nil means http.DefaultClient; Config.NewClient sets one for SHIFTBOSS_CA_FILE
	Timeout        time.Duration // per request (claims add their wait)
	Retries        int           // extra tries for transient trouble
	BackoffInitial time.Duration // the first retry waits about this long
	BackoffMax     time.Duration // the cap of the backoff
	UserAgent      string
}

// NewClient returns a Client with the defaults of the Python runtime: a 10s timeout
// and 4 retries backing off from 0.2s to at most 5s.
func NewClient(baseURL string, token TokenSource) *Client {
	return &Client{
		BaseURL:        strings.TrimRight(baseURL, "/"),
		Token:          token,
		Timeout:        10 * time.Second,
		Retries:        4,
		BackoffInitial: 200 * time.Millisecond,
		BackoffMax:     5 * time.Second,
		UserAgent:      "shiftboss-worker-go/" + Version,
	}
}

// Register announces the worker, its skills and its capacity.
func (c *Client) Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error) {
	var out RegisterResponse
	if err := c.post(ctx, "/v1/workers/register", req, &out, c.Timeout, c.Retries); err != nil {
		return nil, err
	}
	return &out, nil
}

// Claim asks for up to req.MaxAttempts attempts, waiting up to req.WaitSeconds for one.
func (c *Client) Claim(ctx context.Context, workerID string, req *ClaimRequest) (*ClaimResponse, error) {
	var out ClaimResponse
	timeout := c.Timeout + time.Duration(req.WaitSeconds*float64(time.Second))
	if err := c.post(ctx, workerPath(workerID, "claim"), req, &out, timeout, c.Retries); err != nil {
		return nil, err
	}
	return &out, nil
}

// Heartbeat renews the leases of the attempts listed and returns the operator's
// commands. It is tried once, never retried: the next beat is the retry. Give it a ctx
// whose deadline is at most one heartbeat interval away (Timeout still caps it).
func (c *Client) Heartbeat(ctx context.Context, workerID string, req *HeartbeatRequest) (*HeartbeatResponse, error) {
	body := *req
	if body.AttemptIDs == nil {
		body.AttemptIDs = []string{} // the protocol wants a list, not null
	}
	var out HeartbeatResponse
	if err := c.post(ctx, workerPath(workerID, "heartbeat"), &body, &out, c.Timeout, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Progress reports progress once, without retries: it is advisory, and the next
// report supersedes it anyway.
func (c *Client) Progress(ctx context.Context, attemptID string, report *ProgressReport) error {
	return c.post(ctx, attemptPath(attemptID, "progress"), report, &Ack{}, c.Timeout, 0)
}

// Complete reports the attempt's result.
func (c *Client) Complete(ctx context.Context, attemptID string, report *CompleteReport) error {
	return c.sendOutcome(ctx, attemptID, outcome{complete: report}, c.Retries)
}

// Fail reports the attempt's failure.
func (c *Client) Fail(ctx context.Context, attemptID string, report *FailReport) error {
	return c.sendOutcome(ctx, attemptID, outcome{fail: report}, c.Retries)
}

// Release gives the attempt back without an outcome: its job is queued again at once
// and the attempt does not count against the job's retry.maxAttempts.
func (c *Client) Release(ctx context.Context, attemptID string, report *ReleaseReport) error {
	return c.sendOutcome(ctx, attemptID, outcome{release: report}, c.Retries)
}

// sendOutcome posts the one report out holds, with up to retries extra tries.
func (c *Client) sendOutcome(ctx context.Context, attemptID string, out outcome, retries int) error {
	switch {
	case out.complete != nil:
		body := *out.complete
		if body.Result == nil {
			body.Result = json.RawMessage("null")
		}
		return c.post(ctx, attemptPath(attemptID, "complete"), &body, &Ack{}, c.Timeout, retries)
	case out.fail != nil:
		return c.post(ctx, attemptPath(attemptID, "fail"), out.fail, &Ack{}, c.Timeout, retries)
	case out.release != nil:
		return c.post(ctx, attemptPath(attemptID, "release"), out.release, &Ack{}, c.Timeout, retries)
	}
	return errors.New("shiftboss: no outcome to report for attempt " + attemptID)
}

func workerPath(workerID, action string) string {
	return "/v1/workers/" + url.PathEscape(workerID) + "/" + action
}

func attemptPath(attemptID, action string) string {
	return "/v1/attempts/" + url.PathEscape(attemptID) + "/" + action
}

// tokenError is a failure to get the token: not retried, the caller decides.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "shiftboss: no token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

func (c *Client) post(ctx context.Context, path string, body, out any, timeout time.Duration, retries int) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("shiftboss: encoding the request to %s: %w", path, err)
	}
	retries = max(retries, 0)
	for try := 0; ; try++ {
		status, data, err := c.do(ctx, path, payload, timeout)
		var problem error
		switch {
		case err != nil:
			var te *tokenError
			if errors.As(err, &te) {
				return err
			}
			if ctx.Err() != nil {
				return fmt.Errorf("shiftboss: POST %s: %w", path, ctx.Err())
			}
			problem = err
		case status == http.StatusTooManyRequests || status >= 500:
			problem = errorFromResponse(status, data)
		default:
			return decode(status, data, out)
		}
		if try >= retries {
			return &UnavailableError{Path: path, Tries: try + 1, Err: problem}
		}
		if err := sleep(ctx, c.backoff(try)); err != nil {
			return fmt.Errorf("shiftboss: POST %s: %w (after %v)", path, err, problem)
		}
	}
}

func (c *Client) do(ctx context.Context, path string, payload []byte, timeout time.Duration) (int, []byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, &tokenError{fmt.Errorf("building the request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if c.Token != nil {
		token, err := c.Token()
		if err != nil {
			return 0, nil, &tokenError{err}
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	httpClient := c.HTTPClient
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

func (c *Client) backoff(try int) time.Duration {
	return backoff(c.BackoffInitial, c.BackoffMax, try)
}

func decode(status int, data []byte, out any) error {
	if status < 200 || status >= 300 {
		return errorFromResponse(status, data)
	}
	if out == nil {
		return nil
	}
	// Unknown fields are ignored, so new operator fields break no deployed worker.
	if err := json.Unmarshal(data, out); err != nil {
		return &ProtocolError{Status: status, Code: "invalid_response",
			Message: fmt.Sprintf("the operator sent an invalid %T: %v", out, err)}
	}
	return nil
}

func errorFromResponse(status int, data []byte) *ProtocolError {
	pe := &ProtocolError{Status: status}
	var er ErrorResponse
	if json.Unmarshal(data, &er) == nil && er.Error.Code != "" {
		pe.Code, pe.Message = er.Error.Code, er.Error.Message
		if er.Error.Field != nil {
			pe.Field = *er.Error.Field
		}
		return pe
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 500 {
		text = text[:500]
	}
	if text == "" {
		text = http.StatusText(status)
	}
	pe.Message = text
	return pe
}
