package shiftboss

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
)

// NewClient returns a Client for this configuration: the operator's URL, the token
// file (re-read for every request) and, when CAFile is set, an HTTPS transport that
// trusts only the CAs in that file. A CAFile that cannot be used is a *ConfigError.
func (c Config) NewClient() (*Client, error) {
	client := NewClient(c.OperatorURL, c.ReadToken)
	if c.CAFile == "" {
		return client, nil
	}
	pool, err := loadCAPool(c.CAFile)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	client.HTTPClient = &http.Client{Transport: transport}
	return client, nil
}

// loadCAPool reads a PEM bundle of CA certificates; errors name SHIFTBOSS_CA_FILE.
func loadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &ConfigError{EnvCAFile, path, "no such file"}
	}
	if err != nil {
		return nil, &ConfigError{EnvCAFile, path, "cannot read it: " + err.Error()}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, &ConfigError{EnvCAFile, path, "it holds no PEM certificate"}
	}
	return pool, nil
}
