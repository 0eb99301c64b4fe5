package shiftboss

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
)

// NewClient returns a Client for this configuration: the operator's URL, the token
// file (re-read for every request) and, when CAFile or CAData is set, an HTTPS
// transport that trusts only those CAs. A CA that cannot be used is a *ConfigError.
func (c Config) NewClient() (*Client, error) {
	client := NewClient(c.OperatorURL, c.ReadToken)
	pool, err := c.caPool()
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return client, nil
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	client.HTTPClient = &http.Client{Transport: transport}
	return client, nil
}

// caVariable names the variable the operator's CA comes from ("" for the system's roots).
func (c Config) caVariable() string {
	switch {
	case c.CAData != "":
		return EnvCAData
	case c.CAFile != "":
		return EnvCAFile
	}
	return ""
}

// caPool is the CAs the operator's certificate must chain to, from CAData or CAFile;
// nil for the system's roots. Errors are a *ConfigError naming the variable.
func (c Config) caPool() (*x509.CertPool, error) {
	if c.CAData != "" && c.CAFile != "" {
		return nil, &ConfigError{EnvCAData, "", EnvCAFile + " is set too: give the operator's CA one way only (the operator sets " + EnvCAData + " when it has a --worker-ca-file: then remove " + EnvCAFile + " from the pool's env)"}
	}
	if c.CAData != "" {
		return parseCAPool(EnvCAData, "", []byte(c.CAData))
	}
	if c.CAFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(c.CAFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &ConfigError{EnvCAFile, c.CAFile, "no such file"}
	}
	if err != nil {
		return nil, &ConfigError{EnvCAFile, c.CAFile, "cannot read it: " + err.Error()}
	}
	return parseCAPool(EnvCAFile, c.CAFile, data)
}

// parseCAPool reads a PEM bundle of CA certificates; errors name the variable
// (and show value, which is the file's path, not the bundle).
func parseCAPool(variable, value string, data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, &ConfigError{variable, value, "it holds no PEM certificate"}
	}
	return pool, nil
}
