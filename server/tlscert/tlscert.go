// Package tlscert provides the management listener's TLS certificate: one loaded from
// the operator's files, or a self-signed one generated on first start and kept in the
// data directory; and the client side's two ways to trust it without a public CA: a
// CA file, or the certificate's pinned SHA-256 fingerprint.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/internal/atomicfile"
)

// Files of a generated certificate inside its directory (mode 0600, directory 0700).
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Validity of a generated certificate.
const Validity = 10 * 365 * 24 * time.Hour

// Load reads a certificate chain and its key from PEM files and returns it with the
// SHA-256 fingerprint of the leaf.
func Load(certFile, keyFile string) (tls.Certificate, string, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return c, "", fmt.Errorf("load TLS certificate %q and key %q: %w", certFile, keyFile, err)
	}
	return c, Fingerprint(c.Certificate[0]), nil
}

// SelfSigned returns the self-signed certificate kept in dir, generating it first if
// dir holds none: ECDSA P-256, valid Validity, a CA of its own (so that the file
// can also be given to clients as their CA), for "localhost", the host name, the
// loopback addresses and every address of the machine's interfaces at generation,
// plus extraHosts (names or IP addresses). A pinned fingerprint does not depend on
// the names.
func SelfSigned(dir string, extraHosts []string) (tls.Certificate, string, error) {
	certFile, keyFile := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if _, err := os.Stat(certFile); err == nil {
		for _, p := range []string{dir, certFile, keyFile} {
			mode := os.FileMode(0o600)
			if p == dir {
				mode = 0o700
			}
			if err := os.Chmod(p, mode); err != nil {
				return tls.Certificate{}, "", fmt.Errorf("TLS certificate: %w", err)
			}
		}
		return Load(certFile, keyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("TLS certificate directory %q: %w", dir, err)
	}
	certPEM, keyPEM, err := generate(extraHosts)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	// The key first: a certificate file without its key is never left behind.
	// Each file appears whole or not at all (package atomicfile), never readable by others.
	if err := atomicfile.WriteBytes(keyFile, 0o600, keyPEM); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("write TLS key: %w", err)
	}
	if err := atomicfile.WriteBytes(certFile, 0o600, certPEM); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("write TLS certificate: %w", err)
	}
	return Load(certFile, keyFile)
}

func generate(extraHosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "rpi-deployd " + host, Organization: []string{"rpi-deploy"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ipn.IP)
			}
		}
	}
	for _, h := range extraHosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create TLS certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Fingerprint is the SHA-256 of a DER certificate in lower-case hex, as
// `openssl x509 -noout -fingerprint -sha256` prints it without the colons.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// ErrPin is returned when the server's certificate is not the pinned one.
var ErrPin = errors.New("TLS certificate fingerprint does not match the pinned one")

// ClientConfig is the client side: with caFile, the server's chain must verify
// against the certificates in it (host name included); with pin (a SHA-256
// fingerprint in hex, colons and case ignored), the server's leaf certificate must
// have that fingerprint (names and expiry are then not checked: the pin is the
// identity). Both may be given: then both must hold. With neither, the system's
// roots are used as usual. Verification is never switched off.
func ClientConfig(caFile, pin string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %q: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if pin == "" {
		return cfg, nil
	}
	want := strings.ToLower(strings.ReplaceAll(pin, ":", ""))
	if len(want) != sha256.Size*2 {
		return nil, fmt.Errorf("TLS fingerprint %q: want 64 hex digits (SHA-256)", pin)
	}
	if _, err := hex.DecodeString(want); err != nil {
		return nil, fmt.Errorf("TLS fingerprint %q: want 64 hex digits (SHA-256)", pin)
	}
	checkCA := caFile != ""
	pool := cfg.RootCAs
	// The standard verification would reject a self-signed certificate without a CA
	// file; the pin replaces it, in VerifyConnection, which runs on every handshake
	// (resumed ones included).
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return ErrPin
		}
		leaf := cs.PeerCertificates[0]
		if got := Fingerprint(leaf.Raw); got != want {
			return fmt.Errorf("%w: server %s has %s, pinned %s", ErrPin, cs.ServerName, got, want)
		}
		if checkCA {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: cs.ServerName}); err != nil {
				return err
			}
		}
		return nil
	}
	return cfg, nil
}
