package shiftboss

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := ConfigFromLookup(lookup(map[string]string{
		EnvOperatorURL: "http://op:8081/",
		EnvPool:        "resize",
		EnvConcurrency: " ", // empty means the default
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OperatorURL != "http://op:8081" || cfg.Pool != "resize" {
		t.Errorf("url/pool = %q/%q", cfg.OperatorURL, cfg.Pool)
	}
	if cfg.Concurrency != 1 || cfg.DrainTimeout != 30*time.Second || cfg.ClaimWait != 20*time.Second ||
		cfg.OutcomeRetry != 900*time.Second || cfg.CAFile != "" {
		t.Errorf("defaults = %d %v %v %v %q", cfg.Concurrency, cfg.DrainTimeout, cfg.ClaimWait, cfg.OutcomeRetry, cfg.CAFile)
	}
	if cfg.TokenFile != DefaultTokenFile {
		t.Errorf("token file = %q", cfg.TokenFile)
	}
	if cfg.WorkerID != DefaultWorkerID() || !validName(cfg.WorkerID) {
		t.Errorf("worker id = %q, want the hostname %q", cfg.WorkerID, DefaultWorkerID())
	}
}

func TestConfigValues(t *testing.T) {
	cfg, err := ConfigFromLookup(lookup(map[string]string{
		EnvOperatorURL:  "https://op",
		EnvPool:         "p",
		EnvWorkerID:     "w-1.x",
		EnvTokenFile:    "/tmp/tok",
		EnvConcurrency:  "8",
		EnvDrainTimeout: "2.5",
		EnvClaimWait:    "0",
		EnvOutcomeRetry: "60",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{OperatorURL: "https://op", Pool: "p", WorkerID: "w-1.x", TokenFile: "/tmp/tok", Concurrency: 8,
		DrainTimeout: 2500 * time.Millisecond, ClaimWait: 0, OutcomeRetry: time.Minute}
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

func TestConfigErrorsNameTheVariableAndTheFix(t *testing.T) {
	base := map[string]string{EnvOperatorURL: "http://op", EnvPool: "p"}
	cases := []struct {
		name, variable, value string
	}{
		{"bad url", EnvOperatorURL, "ftp://op"},
		{"url without host", EnvOperatorURL, "http://"},
		{"bad pool", EnvPool, "Bad_Pool"},
		{"bad worker id", EnvWorkerID, "UPPER"},
		{"concurrency not a number", EnvConcurrency, "four"},
		{"concurrency zero", EnvConcurrency, "0"},
		{"concurrency too big", EnvConcurrency, "2000"},
		{"drain not a number", EnvDrainTimeout, "soon"},
		{"drain negative", EnvDrainTimeout, "-1"},
		{"claim wait too long", EnvClaimWait, "61"},
		{"claim wait NaN", EnvClaimWait, "NaN"},
		{"outcome retry negative", EnvOutcomeRetry, "-5"},
		{"outcome retry not a number", EnvOutcomeRetry, "forever"},
		{"CA file missing", EnvCAFile, "/nonexistent/ca.pem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			env[tc.variable] = tc.value
			_, err := ConfigFromLookup(lookup(env))
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.variable, tc.value)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Variable != tc.variable {
				t.Fatalf("error %v does not name %s", err, tc.variable)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.variable) || !strings.Contains(msg, "set it to") {
				t.Errorf("message %q lacks the variable or the fix", msg)
			}
		})
	}
}

func TestConfigMissingRequired(t *testing.T) {
	_, err := ConfigFromLookup(lookup(map[string]string{}))
	if err == nil {
		t.Fatal("accepted an empty environment")
	}
	for _, v := range []string{EnvOperatorURL, EnvPool} {
		if !strings.Contains(err.Error(), v+" is not set: set it to") {
			t.Errorf("%q does not say %s is not set", err, v)
		}
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{TokenFile: filepath.Join(dir, "token")}
	var ce *ConfigError
	if _, err := cfg.ReadToken(); !errors.As(err, &ce) || ce.Variable != EnvTokenFile || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(cfg.TokenFile, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.ReadToken(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	for _, tok := range []string{"one", "two"} { // re-read every time: tokens rotate
		if err := os.WriteFile(cfg.TokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := cfg.ReadToken(); err != nil || got != tok {
			t.Errorf("ReadToken = %q, %v; want %q", got, err, tok)
		}
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	w := NewWorker(Config{OperatorURL: "http://op", Pool: "p", WorkerID: "w", TokenFile: "t", Concurrency: 0})
	w.Handle("x", func(_ context.Context, _ *Job) (any, error) { return nil, nil }, nil)
	err := w.Run(t.Context())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Variable != EnvConcurrency {
		t.Fatalf("Run = %v, want a ConfigError for %s", err, EnvConcurrency)
	}
}
