package jsonstr

import (
	"encoding/json"
	"testing"
)

// TestAppendAsMarshal: Append writes json.Marshal's bytes for plain strings and for
// every kind that needs escaping.
func TestAppendAsMarshal(t *testing.T) {
	for _, s := range []string{"", "plain", "KXP2-CORO-001", "http://10.0.0.1:8080/images/a.img.zst", "a\"b", `back\slash`,
		"<html>&", "tab\tnew\nline\r", "\x00\x1f\x7f", "ünïcode", "\u2028\u2029", "bad \xff utf-8", "~ !#$%'()*+,-./:;=?@[]^_`{|}"} {
		want, _ := json.Marshal(s)
		if got := Append([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("Append(%q) = %s, json.Marshal %s", s, got[1:], want)
		}
	}
}

// FuzzAppend: Append is json.Marshal for any string (go test -fuzz FuzzAppend ./server/internal/jsonstr).
func FuzzAppend(f *testing.F) {
	f.Add("plain")
	f.Add("<\xff\u2028\"")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append(nil, s); string(got) != string(want) {
			t.Errorf("Append(%q) = %s, json.Marshal %s", s, got, want)
		}
	})
}

// TestAppendFieldAsMarshal: members appended after a first one read as json.Marshal
// writes them, an empty omitempty string left out.
func TestAppendFieldAsMarshal(t *testing.T) {
	type v struct {
		A string `json:"a"`
		B string `json:"b"`
		C string `json:"c,omitempty"`
	}
	for _, x := range []v{{"x", "<y>\n", ""}, {"", "", "z\u2028"}} {
		want, _ := json.Marshal(x)
		got := AppendField(Append([]byte(`{"a":`), x.A), "b", x.B)
		if got = append(AppendOmitEmpty(got, "c", x.C), '}'); string(got) != string(want) {
			t.Errorf("%s, json.Marshal %s", got, want)
		}
	}
}
