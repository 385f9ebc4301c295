// Package jsonstr appends strings, and the members of objects, in JSON exactly as
// encoding/json's Marshal writes them, for the encoders that write their JSON by hand on hot paths (the hello
// answer, the events' envelope) and must stay byte for byte what json.Marshal wrote.
package jsonstr

import (
	"encoding/json"
	"strconv"
)

// Append appends s as json.Marshal writes it: as it is between quotes when it holds
// only printable ASCII that json.Marshal leaves alone, else through json.Marshal
// (escapes, the HTML-safe \u003c, \u003e and \u0026, U+2028 and U+2029, invalid
// UTF-8 as U+FFFD).
func Append(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendName appends ,"name": — a member's name after another member, written as
// it is: for the plain ASCII names of the wire types' tags.
func AppendName(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// AppendField appends ,"name":"value", the value as Append writes it.
func AppendField(b []byte, name, v string) []byte {
	return Append(AppendName(b, name), v)
}

// AppendOmitEmpty is AppendField for a string tagged omitempty: nothing for "".
func AppendOmitEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return AppendField(b, name, v)
}

// AppendInt appends ,"name":v.
func AppendInt(b []byte, name string, v int64) []byte {
	return strconv.AppendInt(AppendName(b, name), v, 10)
}

// AppendOmitZero is AppendInt for a number tagged omitempty: nothing for 0.
func AppendOmitZero(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	return AppendInt(b, name, v)
}

// AppendBool appends ,"name":true or ,"name":false.
func AppendBool(b []byte, name string, v bool) []byte {
	b = AppendName(b, name)
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// AppendTrue is AppendBool for a bool tagged omitempty: nothing for false.
func AppendTrue(b []byte, name string, v bool) []byte {
	if !v {
		return b
	}
	return AppendBool(b, name, v)
}
