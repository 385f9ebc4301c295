package mgmtapi

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
)

// jsonNames adds the JSON names of t's fields, through embedded, nested, pointer,
// slice and map types, to names.
func jsonNames(t reflect.Type, names map[string]bool, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
		jsonNames(f.Type, names, seen)
	}
}

// dashboardOwn are snake_case names the dashboard's JavaScript reads from objects of
// its own, not from the API: the profile form's fields and the live view's rows.
var dashboardOwn = map[string]string{
	"wifi_ssid":       "profiles.js: profile form field",
	"wifi_hidden":     "profiles.js: profile form field",
	"wifi_passphrase": "profiles.js: profile form field",
	"wifi_country":    "profiles.js: profile form field",
	"deployment_id":   "live.js: its own row per board",
}

// TestDashboardReadsTheContract pins the dashboard's expectations of the API: every
// snake_case property its JavaScript reads (obj.some_field) is a JSON name of the
// management API's wire types (this package, with the agent API's first-boot
// settings and the profile they embed) or of the image manifest it shows, unless
// it is one of the dashboard's own (dashboardOwn). A field renamed here without the
// JavaScript, or read there but never sent, fails naming the file.
func TestDashboardReadsTheContract(t *testing.T) {
	names := map[string]bool{}
	seen := map[reflect.Type]bool{}
	for _, v := range []any{Venue{}, ProductView{}, PoolStats{}, PoolName{}, ImageView{}, UploadState{}, Batch{}, BoardView{},
		DeploymentView{}, Fleet{}, AuditEntry{}, User{}, ProfileView{}, ProfileLink{}, EEPROMCard{}, Swarm{}, Site{}, manifest.Manifest{}} {
		jsonNames(reflect.TypeOf(v), names, seen)
	}
	files, err := filepath.Glob("../../dashboard/static/app/js/*.js")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob("../../dashboard/static/app/js/pages/*.js")
	files = append(files, pages...)
	if len(files) < 5 {
		t.Fatalf("dashboard JavaScript not found: %q", files)
	}
	prop := regexp.MustCompile(`\.([a-z][a-z0-9]*_[a-z0-9_]*)\b`)
	checked := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range prop.FindAllStringSubmatch(string(src), -1) {
			name := m[1]
			checked[name] = true
			if !names[name] && dashboardOwn[name] == "" {
				t.Errorf("%s reads .%s, which no wire type sends", filepath.Base(f), name)
			}
		}
	}
	var list []string
	for n := range checked {
		list = append(list, n)
	}
	sort.Strings(list)
	if len(list) < 20 {
		t.Errorf("only %d snake_case properties found: %v", len(list), list)
	}
	t.Logf("%d properties checked: %v", len(list), list)
}
