package shiftboss

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serverCert is a serving certificate for 127.0.0.1 signed by the CA.
func (ca *testCA) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "shiftboss"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) file(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsOperator serves op's protocol over HTTPS with a certificate signed by ca.
func tlsOperator(t *testing.T, op *fakeOperator, ca *testCA) string {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(op.serve))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.serverCert(t)}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // a refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAWorkerVerifiesTheOperatorAgainstTheCAFile(t *testing.T) {
	ca := newTestCA(t, "shiftboss-ca")
	workOverTLS(t, ca, func(cfg *Config) { cfg.CAFile = ca.file(t) })
}

// The operator gives the pods it creates its CA as text: SHIFTBOSS_CA_DATA.
func TestAWorkerVerifiesTheOperatorAgainstTheCAData(t *testing.T) {
	ca := newTestCA(t, "shiftboss-ca")
	cfg, err := ConfigFromLookup(lookup(map[string]string{
		EnvOperatorURL: "https://op", EnvPool: "p", EnvCAData: string(ca.pem),
	}))
	if err != nil || cfg.CAData != strings.TrimSpace(string(ca.pem)) {
		t.Fatalf("ConfigFromLookup = %q, %v", cfg.CAData, err)
	}
	workOverTLS(t, ca, func(c *Config) { c.CAData = cfg.CAData })
}

// workOverTLS runs a job through a worker, configured by trust, of an operator
// serving a certificate signed by ca.
func workOverTLS(t *testing.T, ca *testCA, trust func(*Config)) {
	op := newFakeOperator(t)
	cfg := testConfig(tlsOperator(t, op, ca))
	trust(&cfg)
	cfg.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(cfg.TokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newTestWorker(op, cfg)
	w.Client = nil // Run builds it from the configuration
	w.Handle("add", add, addSchema)
	id := op.enqueue("add", `{"a":4,"b":5}`)
	start(t, w)
	op.settledAfter(t, id)
	op.with(func() {
		if got := string(op.completes[id]); got != "9" {
			t.Errorf("result %q over TLS, want 9", got)
		}
	})
}

func TestAnOperatorCertificateFromAnotherCAIsRefused(t *testing.T) {
	op := newFakeOperator(t)
	url := tlsOperator(t, op, newTestCA(t, "the operator's CA"))
	cfg := testConfig(url)
	cfg.CAFile = newTestCA(t, "another CA").file(t)
	client, err := cfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	client.Token = func() (string, error) { return "tok", nil }
	client.Retries = 0
	_, err = client.Register(t.Context(), &RegisterRequest{Pool: "p", WorkerID: "w", Capacity: 1})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("Register = %v, want an x509.UnknownAuthorityError", err)
	}
	if n := op.count("register", ""); n != 0 {
		t.Errorf("%d registrations reached an operator that could not be verified", n)
	}
}

func TestCAFileAndCADataExcludeEachOther(t *testing.T) {
	ca := newTestCA(t, "shiftboss-ca")
	_, err := ConfigFromLookup(lookup(map[string]string{
		EnvOperatorURL: "https://op", EnvPool: "p", EnvCAFile: ca.file(t), EnvCAData: string(ca.pem),
	}))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Variable != EnvCAData {
		t.Fatalf("%v, want a ConfigError naming %s", err, EnvCAData)
	}
	if msg := err.Error(); !strings.Contains(msg, EnvCAFile+" is set too") || !strings.Contains(msg, "remove "+EnvCAFile) {
		t.Errorf("%q does not say which two variables clash and what to do", msg)
	}
}

func TestABadCADataIsAConfigError(t *testing.T) {
	notPEM := "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----"
	_, err := ConfigFromLookup(lookup(map[string]string{
		EnvOperatorURL: "https://op", EnvPool: "p", EnvCAData: notPEM,
	}))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Variable != EnvCAData {
		t.Fatalf("%v, want a ConfigError naming %s", err, EnvCAData)
	}
	want := EnvCAData + " is invalid (it holds no PEM certificate): set it to the PEM text"
	if msg := err.Error(); !strings.HasPrefix(msg, want) || strings.Contains(msg, "bm90") {
		t.Errorf("%q: want %q..., without the bundle itself", msg, want)
	}
}

func TestACANeedsAnHTTPSOperatorURL(t *testing.T) {
	ca := newTestCA(t, "shiftboss-ca")
	for variable, value := range map[string]string{EnvCAFile: ca.file(t), EnvCAData: string(ca.pem)} {
		_, err := ConfigFromLookup(lookup(map[string]string{
			EnvOperatorURL: "http://op", EnvPool: "p", variable: value,
		}))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != variable {
			t.Fatalf("%s: %v, want a ConfigError naming it", variable, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "http://op is not https://") {
			t.Errorf("%s: %q does not say the URL must be https://", variable, msg)
		}
	}
}

func TestABadCAFileIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, problem := range map[string]string{
		notPEM:                             "no PEM certificate",
		filepath.Join(dir, "missing"):      "no such file",
		dir /* a directory, not a file */ : "cannot read it",
	} {
		_, err := ConfigFromLookup(lookup(map[string]string{
			EnvOperatorURL: "https://op", EnvPool: "p", EnvCAFile: path,
		}))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Variable != EnvCAFile {
			t.Fatalf("%s: %v, want a ConfigError naming %s", path, err, EnvCAFile)
		}
		if msg := err.Error(); !strings.Contains(msg, problem) || !strings.Contains(msg, "set it to") {
			t.Errorf("%s: %q lacks the problem or the fix", path, msg)
		}
	}
	cfg := testConfig("https://op")
	cfg.CAFile = notPEM
	w := NewWorker(cfg)
	w.Handle("x", add, nil)
	var ce *ConfigError
	if err := w.Run(t.Context()); !errors.As(err, &ce) || ce.Variable != EnvCAFile {
		t.Errorf("Run = %v, want the ConfigError", err)
	}
}
