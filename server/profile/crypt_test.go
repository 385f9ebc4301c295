package profile

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCryptMatchesRealTools checks Crypt against the real openssl passwd and
// mkpasswd (Debian's whois package) for SHA-256 and SHA-512 crypt, short and long
// passwords, non-ASCII, custom rounds and over-long salts.
func TestCryptMatchesRealTools(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
		setting  string
		tool     []string // the real command; the password goes on stdin
	}{
		{"sha512 openssl", "secret-pw", "$6$rpideploy", []string{"openssl", "passwd", "-6", "-salt", "rpideploy", "-stdin"}},
		{"sha256 openssl", "secret-pw", "$5$rpideploy", []string{"openssl", "passwd", "-5", "-salt", "rpideploy", "-stdin"}},
		{"sha512 long password", strings.Repeat("correct horse battery staple ", 5), "$6$abcdefgh12345678",
			[]string{"openssl", "passwd", "-6", "-salt", "abcdefgh12345678", "-stdin"}},
		{"sha512 utf-8", "pässwörd✓", "$6$./salt", []string{"openssl", "passwd", "-6", "-salt", "./salt", "-stdin"}},
		{"sha512 mkpasswd", "hunter2", "$6$Xy9zAbCdEfGh", []string{"mkpasswd", "-m", "sha-512", "-S", "Xy9zAbCdEfGh", "-s"}},
		{"sha512 mkpasswd rounds", "hunter2", "$6$rounds=10000$Xy9zAbCdEfGh", []string{"mkpasswd", "-m", "sha-512", "-R", "10000", "-S", "Xy9zAbCdEfGh", "-s"}},
		{"sha256 mkpasswd rounds", "hunter2", "$5$rounds=2000$Xy9zAbCd", []string{"mkpasswd", "-m", "sha-256", "-R", "2000", "-S", "Xy9zAbCd", "-s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.tool[0], tc.tool[1:]...)
			cmd.Stdin = strings.NewReader(tc.password + "\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", strings.Join(tc.tool, " "), err)
			}
			want := strings.TrimSpace(string(out))
			got, err := Crypt(tc.password, tc.setting)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Crypt(%q, %q)\n got %s\nwant %s (%s)", tc.password, tc.setting, got, want, tc.tool[0])
			}
			if !ValidHash(got) {
				t.Errorf("ValidHash(%s) = false", got)
			}
			// A stored hash is its own setting: checking a password is hashing again.
			if again, _ := Crypt(tc.password, got); again != got {
				t.Errorf("Crypt(password, hash) = %s, want the hash back", again)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	h1, err := HashPassword("secret-pw")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("secret-pw")
	if h1 == h2 || !strings.HasPrefix(h1, "$6$") || !ValidHash(h1) {
		t.Fatalf("HashPassword gave %s and %s: want two different valid $6$ hashes", h1, h2)
	}
	// openssl verifies it: hashing the password with the stored salt gives it back.
	salt := strings.Split(h1, "$")[2]
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, "secret-pw").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != h1 {
		t.Errorf("openssl passwd -6 -salt %s = %s, want %s", salt, out, h1)
	}
}

func TestValidHash(t *testing.T) {
	yes, err := exec.Command("mkpasswd", "-m", "yescrypt", "secret-pw").Output()
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]bool{
		strings.TrimSpace(string(yes)): true,
		"$6$rpideploy$.bL8lFhHbjAix6mf/5rG1rFJ5Bt6wdfg3hh2wzFYYyWqxzMNdWdrLMKhUUeO16lVL5zdhhVffm3EGPeXXopEA0": true,
		"$6$rpideploy$.bL8lFhHbjAix6mf/5rG1rFJ5Bt6wdfg3hh2wzFYYyWqxzMNdWdrLMKhUUeO16lVL5zdhhVffm3EGPeXXopEA":  false,
		"secret-pw":             false,
		"$1$abc$def":            false, // MD5 crypt: refused
		"$6$salt$x' ; reboot #": false,
		"":                      false,
	} {
		if got := ValidHash(h); got != want {
			t.Errorf("ValidHash(%q) = %v, want %v", h, got, want)
		}
	}
}

// TestDerivePSKMatchesWpaPassphrase checks DerivePSK against Debian's wpa_passphrase
// (wpasupplicant) for short, long, spaced and non-ASCII SSIDs and passphrases.
func TestDerivePSKMatchesWpaPassphrase(t *testing.T) {
	for _, tc := range [][2]string{
		{"Venue Wi-Fi", "correct horse battery"},
		{"x", "12345678"},
		{"a-32-byte-long-ssid-for-testing!", strings.Repeat("p", 63)},
		{"Café ☕", "mötley crüe passphrase"},
	} {
		out, err := exec.Command("wpa_passphrase", tc[0], tc[1]).Output()
		if err != nil {
			t.Fatalf("wpa_passphrase %q: %v", tc[0], err)
		}
		var want string
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "psk="); ok {
				want = v
			}
		}
		got, err := DerivePSK(tc[0], tc[1])
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("DerivePSK(%q, %q) = %s, want %s (wpa_passphrase)", tc[0], tc[1], got, want)
		}
	}
}
