package mgmtapi

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fill sets every exported field of v to a value made from a running counter, in
// field order: strings "s" + a letter, numbers the counter, booleans true, slices of
// two and maps of one element, times one fixed instant, pointers to a filled value.
// testdata/*.json were made by the same walk over the types the API encoded before
// this package existed (the store's rows and the handlers' view structs), so a
// field renamed, reordered, retagged or dropped here changes the bytes.
func fill(v reflect.Value, n *int) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 4, 23, 9, 16, 123456789, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), n)
			}
		}
	case reflect.String:
		*n++
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Int, reflect.Int64, reflect.Int32:
		*n++
		v.SetInt(int64(*n))
	case reflect.Float64:
		*n++
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), n)
		fill(s.Index(1), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		e := reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// TestWireBytes pins the JSON of every management API type to the bytes the
// server sent before the wire types had a package of their own: each file holds the
// zero value's encoding, then a filled value's (see fill). The dashboard's
// JavaScript and older CLIs read these bytes; they must not change.
func TestWireBytes(t *testing.T) {
	for _, tc := range []struct {
		file string
		v    any
	}{
		{"venue", &Venue{}}, {"product", &Product{}}, {"product_view", &ProductView{}}, {"product_spec", &ProductSpec{}},
		{"pool_stats", &PoolStats{}}, {"pool_name", &PoolName{}}, {"image", &Image{}}, {"image_view", &ImageView{}},
		{"upload_state", &UploadState{}}, {"batch", &Batch{}}, {"batch_spec", &BatchSpec{}}, {"board", &Board{}},
		{"board_view", &BoardView{}}, {"board_event", &BoardEvent{}}, {"deployment", &Deployment{}},
		{"deployment_view", &DeploymentView{}}, {"phase", &Phase{}}, {"fleet", &Fleet{}}, {"audit_entry", &AuditEntry{}},
		{"user", &User{}}, {"profile_view", &ProfileView{}}, {"profile_link", &ProfileLink{}}, {"eeprom_card", &EEPROMCard{}},
		{"site", &Site{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tc.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			zero, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			fill(reflect.ValueOf(tc.v).Elem(), &n)
			full, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got := append(append(append(zero, '\n'), full...), '\n')
			if !bytes.Equal(got, want) {
				t.Errorf("%s: JSON changed\n got: %s\nwant: %s", tc.file, got, want)
			}
			// What a client decodes is what was sent.
			back := reflect.New(reflect.TypeOf(tc.v).Elem()).Interface()
			if err := json.Unmarshal(full, back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.v) {
				t.Errorf("%s: decode of %s differs from what was encoded", tc.file, full)
			}
		})
	}
}
