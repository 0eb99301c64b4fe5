package shiftboss

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTokenFile is where a pod's projected service-account token is mounted.
const DefaultTokenFile = "/var/run/secrets/shiftboss/token"

// DefaultOutcomeRetry is how long an outcome is re-sent by default: operator outages
// (restarts, hand-overs, rescheduled pods) up to this long lose no finished work.
const DefaultOutcomeRetry = 15 * time.Minute

// The environment variables read by ConfigFromEnv (the same as the Python runtime's).
const (
	EnvOperatorURL  = "SHIFTBOSS_OPERATOR_URL"
	EnvPool         = "SHIFTBOSS_POOL"
	EnvWorkerID     = "SHIFTBOSS_WORKER_ID"
	EnvTokenFile    = "SHIFTBOSS_TOKEN_FILE"
	EnvConcurrency  = "SHIFTBOSS_CONCURRENCY"
	EnvDrainTimeout = "SHIFTBOSS_DRAIN_TIMEOUT_SECONDS"
	EnvClaimWait    = "SHIFTBOSS_CLAIM_WAIT_SECONDS"
	EnvOutcomeRetry = "SHIFTBOSS_OUTCOME_RETRY_SECONDS"
	EnvCAFile       = "SHIFTBOSS_CA_FILE"
	EnvCAData       = "SHIFTBOSS_CA_DATA"
)

// hints says what a good value of each variable looks like.
var hints = map[string]string{
	EnvOperatorURL:  "the operator's worker API URL, e.g. http://shiftboss.shiftboss-system.svc:8081",
	EnvPool:         "the name of the WorkerPool this worker serves, e.g. resize",
	EnvWorkerID:     "a lowercase DNS name (a-z, 0-9, '-', '.'), e.g. the pod name; defaults to the hostname",
	EnvTokenFile:    "the path of a service-account token with audience 'shiftboss' (default " + DefaultTokenFile + "; outside a pod: kubectl create token ... > file)",
	EnvConcurrency:  "an integer from 1 to 1024, e.g. 4",
	EnvDrainTimeout: "a number of seconds >= 0",
	EnvClaimWait:    "a number of seconds from 0 to 60",
	EnvOutcomeRetry: "a number of seconds >= 0: how long an outcome is re-sent while the operator is away (default 900)",
	EnvCAFile:       "the path of a PEM file holding the CA certificate(s) that signed the operator's serving certificate, or unset it to use the system's roots",
	EnvCAData:       "the PEM text of the CA certificate(s) that signed the operator's serving certificate (the operator sets it from its --worker-ca-file), or unset it",
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Config holds the settings of one worker process.
type Config struct {
	OperatorURL  string        // the operator's worker API, without a trailing slash
	Pool         string        // the WorkerPool served
	WorkerID     string        // this worker's id (in a pod, the pod name)
	TokenFile    string        // the token file, re-read for every request
	Concurrency  int           // attempts run at once, 1..1024
	DrainTimeout time.Duration // how long a shutdown waits for running attempts
	ClaimWait    time.Duration // the claim long-poll, 0..60s
	// OutcomeRetry is how long an outcome is re-sent while the operator does not
	// answer (default 15 minutes: an operator outage that long loses no finished work).
	OutcomeRetry time.Duration
	// CAFile is a PEM bundle: when set, the operator's certificate must chain to it.
	CAFile string
	// CAData is the same as PEM text (the operator gives it to the pods it creates);
	// at most one of CAFile and CAData is set.
	CAData string
}

// ConfigError names an environment variable (or Config field) at fault and the fix.
type ConfigError struct {
	Variable string
	Value    string
	Problem  string
}

func (e *ConfigError) Error() string {
	hint := hints[e.Variable]
	if e.Value == "" && e.Problem == "is not set" {
		return fmt.Sprintf("%s is not set: set it to %s", e.Variable, hint)
	}
	msg := fmt.Sprintf("%s=%q is invalid (%s)", e.Variable, e.Value, e.Problem)
	if e.Value == "" { // nothing worth quoting (or too long to: a PEM bundle)
		msg = fmt.Sprintf("%s is invalid (%s)", e.Variable, e.Problem)
	}
	if hint != "" {
		msg += ": set it to " + hint
	}
	return msg
}

// ConfigFromEnv reads the configuration from the SHIFTBOSS_* environment variables.
// An empty variable means its default. The error names every variable at fault.
func ConfigFromEnv() (Config, error) {
	return ConfigFromLookup(os.LookupEnv)
}

// ConfigFromLookup is ConfigFromEnv with another source of variables (for tests).
func ConfigFromLookup(lookup func(string) (string, bool)) (Config, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	cfg := Config{
		OperatorURL:  strings.TrimRight(get(EnvOperatorURL), "/"),
		Pool:         get(EnvPool),
		WorkerID:     get(EnvWorkerID),
		TokenFile:    get(EnvTokenFile),
		Concurrency:  1,
		DrainTimeout: 30 * time.Second,
		ClaimWait:    20 * time.Second,
		OutcomeRetry: DefaultOutcomeRetry,
		CAFile:       get(EnvCAFile),
		CAData:       get(EnvCAData),
	}
	if cfg.WorkerID == "" {
		cfg.WorkerID = DefaultWorkerID()
	}
	if cfg.TokenFile == "" {
		cfg.TokenFile = DefaultTokenFile
	}
	var problems []error
	if raw := get(EnvConcurrency); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			problems = append(problems, &ConfigError{EnvConcurrency, raw, "not an integer"})
		} else {
			cfg.Concurrency = n
		}
	}
	seconds := func(name string, into *time.Duration) {
		raw := get(name)
		if raw == "" {
			return
		}
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			problems = append(problems, &ConfigError{name, raw, "not a number"})
			return
		}
		if f < 0 || f > 1e9 {
			problems = append(problems, &ConfigError{name, raw, "out of range"})
			return
		}
		*into = time.Duration(f * float64(time.Second))
	}
	seconds(EnvDrainTimeout, &cfg.DrainTimeout)
	seconds(EnvClaimWait, &cfg.ClaimWait)
	seconds(EnvOutcomeRetry, &cfg.OutcomeRetry)
	if len(problems) > 0 {
		// Report the values that could not be parsed along with the rest.
		if err := cfg.Validate(); err != nil {
			problems = append([]error{err}, problems...)
		}
		return cfg, errors.Join(problems...)
	}
	return cfg, cfg.Validate()
}

// Validate checks every field; the error names the variable of each one at fault.
func (c Config) Validate() error {
	var problems []error
	bad := func(name, value, problem string) {
		problems = append(problems, &ConfigError{name, value, problem})
	}
	if c.OperatorURL == "" {
		bad(EnvOperatorURL, "", "is not set")
	} else if u, err := url.Parse(c.OperatorURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		bad(EnvOperatorURL, c.OperatorURL, "must be an http:// or https:// URL with a host")
	}
	if c.Pool == "" {
		bad(EnvPool, "", "is not set")
	} else if !validName(c.Pool) {
		bad(EnvPool, c.Pool, "must be a lowercase DNS name (a-z, 0-9, '-', '.')")
	}
	if !validName(c.WorkerID) {
		bad(EnvWorkerID, c.WorkerID, "must be a lowercase DNS name (a-z, 0-9, '-', '.')")
	}
	if c.TokenFile == "" {
		bad(EnvTokenFile, "", "must not be empty")
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		bad(EnvConcurrency, strconv.Itoa(c.Concurrency), "must be from 1 to 1024")
	}
	if c.DrainTimeout < 0 {
		bad(EnvDrainTimeout, secondsText(c.DrainTimeout), "must be >= 0")
	}
	if c.ClaimWait < 0 || c.ClaimWait > 60*time.Second {
		bad(EnvClaimWait, secondsText(c.ClaimWait), "must be from 0 to 60")
	}
	if c.OutcomeRetry < 0 {
		bad(EnvOutcomeRetry, secondsText(c.OutcomeRetry), "must be >= 0")
	}
	if _, err := c.caPool(); err != nil {
		problems = append(problems, err)
	}
	if v := c.caVariable(); v != "" && c.OperatorURL != "" && !strings.HasPrefix(c.OperatorURL, "https://") {
		bad(v, "", "it is set but "+EnvOperatorURL+"="+c.OperatorURL+" is not https://: use the operator's https:// URL, or unset "+v)
	}
	return errors.Join(problems...)
}

// ReadToken reads the token file; call it for every request (projected tokens rotate).
func (c Config) ReadToken() (string, error) {
	data, err := os.ReadFile(c.TokenFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", &ConfigError{EnvTokenFile, c.TokenFile, "no such file; mount a projected service-account token there"}
	}
	if err != nil {
		return "", &ConfigError{EnvTokenFile, c.TokenFile, "cannot read it: " + err.Error()}
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", &ConfigError{EnvTokenFile, c.TokenFile, "the file is empty"}
	}
	return token, nil
}

// DefaultWorkerID is the hostname made into a valid worker id.
func DefaultWorkerID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(host) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '.' || r == '-' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-.")
	if len(name) > 253 {
		name = strings.Trim(name[:253], "-.")
	}
	if name == "" {
		return "worker"
	}
	return name
}

func validName(s string) bool { return len(s) <= 253 && nameRE.MatchString(s) }

func secondsText(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'g', -1, 64) }
