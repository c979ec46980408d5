package model_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/model"
)

// thermostatModels parses the example's models.
func thermostatModels(t testing.TB) map[string]*model.Interface {
	t.Helper()
	files, err := filepath.Glob("../../examples/thermostat/models/*.json")
	if err != nil || len(files) != 3 {
		t.Fatalf("example models: %v %v", files, err)
	}
	out := map[string]*model.Interface{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		list, err := model.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, it := range list {
			out[it.ID] = it
		}
	}
	return out
}

func compileController(t testing.TB) *model.Model {
	t.Helper()
	repo := thermostatModels(t)
	m, err := model.Compile("dtmi:ferry:example:TemperatureController;1", func(id string) *model.Interface { return repo[id] })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCompileController(t *testing.T) {
	m := compileController(t)
	if len(m.Components) != 3 || m.Components[0].Name != "thermostat1" || m.Components[2].Interface != "dtmi:ferry:example:DeviceInformation;1" {
		t.Fatalf("components: %+v", m.Components)
	}
	temp := m.Component("thermostat2").TelemetryNamed("temperature")
	if temp == nil || temp.Unit != "degreeCelsius" || temp.SemanticTypes[0] != "Temperature" || temp.Schema.Kind != "double" {
		t.Fatalf("thermostat2 temperature: %+v", temp)
	}
	comp, cmd, ok := m.Command("thermostat1*getMaxMinReport")
	if !ok || comp != "thermostat1" || cmd.Request.Schema.Kind != "dateTime" || len(cmd.Response.Schema.Fields) != 5 {
		t.Fatalf("command: %v %+v", comp, cmd)
	}
	if _, _, ok := m.Command("reboot"); !ok {
		t.Fatal("reboot not found")
	}
	if _, _, ok := m.Command("thermostat3*getMaxMinReport"); ok {
		t.Fatal("unknown component's command found")
	}
	w := m.Writables()
	if len(w) != 2 || w[0].Component != "thermostat1" || w[0].Name != "targetTemperature" {
		t.Fatalf("writables: %+v", w)
	}
	// A model whose component's interface is missing does not compile.
	repo := thermostatModels(t)
	delete(repo, "dtmi:ferry:example:Thermostat;1")
	if _, err := model.Compile("dtmi:ferry:example:TemperatureController;1", func(id string) *model.Interface { return repo[id] }); err == nil ||
		!strings.Contains(err.Error(), "thermostat1") {
		t.Fatalf("compile without Thermostat: %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	const ok = `"@context":"dtmi:dtdl:context;2","@id":"dtmi:x:y;1","@type":"Interface"`
	cases := []struct{ doc, path, msg string }{
		{`{`, "$", "not JSON"},
		{`[]`, "$", "no interface"},
		{`{"@id":"dtmi:x:y;1","@type":"Interface"}`, "$", "@context is required"},
		{`{"@context":"dtmi:dtdl:context;4","@id":"dtmi:x:y;1","@type":"Interface"}`, "$.@context[0]", "not a DTDL context"},
		{`{"@context":"dtmi:dtdl:context;2","@id":"dtmi:x:y","@type":"Interface"}`, "$.@id", "with a version"},
		{`{"@context":"dtmi:dtdl:context;2","@id":"urn:x","@type":"Interface"}`, "$.@id", "not a DTMI"},
		{`{"@context":"dtmi:dtdl:context;2","@id":"dtmi:x:y;1","@type":"Telemetry"}`, "$.@type", "Interface"},
		{`{` + ok + `,"bogus":1}`, "$.bogus", "no property"},
		{`{` + ok + `,"contents":{}}`, "$.contents", "must be an array"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t"}]}`, "$.contents[0]", "schema is required"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"1t","schema":"double"}]}`, "$.contents[0].name", "not a DTDL name"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":"dbl"}]}`, "$.contents[0].schema", "not a DTDL schema"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":"uuid"}]}`, "$.contents[0].schema", "needs DTDL v3"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":"double","unit":"degreeCelsius"}]}`, "$.contents[0].unit", "semantic type"},
		{`{` + ok + `,"contents":[{"@type":"Thing","name":"t"}]}`, "$.contents[0].@type", "one of Telemetry"},
		{`{` + ok + `,"contents":[{"@type":"Property","name":"p","schema":"double","writable":"yes"}]}`, "$.contents[0].writable", "true or false"},
		{`{` + ok + `,"contents":[{"@type":"Property","name":"p","schema":"double"},{"@type":"Telemetry","name":"p","schema":"double"}]}`, "$.contents[1].name", "already the name"},
		{`{` + ok + `,"contents":[{"@type":"Command","name":"c","request":{"schema":"double"}}]}`, "$.contents[0].request", "name is required"},
		{`{` + ok + `,"contents":[{"@type":"Component","name":"c","schema":"double"}]}`, "$.contents[0].schema", "interface's DTMI"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":{"@type":"Object","fields":[{"name":"a","schema":"double"},{"name":"b"}]}}]}`, "$.contents[0].schema.fields[1]", "schema is required"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":{"@type":"Enum","valueSchema":"integer","enumValues":[{"name":"a","enumValue":"x"}]}}]}`, "$.contents[0].schema.enumValues[0].enumValue", "integer"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":{"@type":"Map","mapKey":{"name":"k","schema":"integer"},"mapValue":{"name":"v","schema":"double"}}}]}`, "$.contents[0].schema.mapKey.schema", "string"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":{"@type":"Array"}}]}`, "$.contents[0].schema", "elementSchema is required"},
		{`{` + ok + `,"contents":[{"@type":"Telemetry","name":"t","schema":"dtmi:x:s;1"}]}`, "$.contents[0].schema", "neither a DTDL primitive nor defined"},
		{`[{` + ok + `},{` + ok + `}]`, "$[1].@id", "appears twice"},
	}
	for _, c := range cases {
		_, err := model.Parse([]byte(c.doc))
		var inv *model.InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("%s: err %v, want an InvalidError", c.doc, err)
			continue
		}
		found := false
		for _, p := range inv.Problems {
			if p.Path == c.path && strings.Contains(p.Msg, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s:\n  got %v\n  want %s: ...%s...", c.doc, inv.Problems, c.path, c.msg)
		}
	}
}

func TestParseValidFeatures(t *testing.T) {
	doc := `[{"@context":["dtmi:dtdl:context;3","dtmi:dtdl:extension:quantitativeTypes;1"],"@id":"dtmi:x:base;1","@type":"Interface",
	  "contents":[{"@type":"Telemetry","name":"id","schema":"uuid"}]},
	 {"@context":"dtmi:dtdl:context;3","@id":"dtmi:x:dev;2","@type":"Interface","extends":"dtmi:x:base;1",
	  "displayName":{"en":"Device","de":"Gerät"},
	  "schemas":[{"@id":"dtmi:x:mode;1","@type":"Enum","valueSchema":"string","enumValues":[{"name":"on","enumValue":"on"},{"name":"off","enumValue":"off"}]}],
	  "contents":[
	   {"@type":"Telemetry","name":"mode","schema":"dtmi:x:mode;1"},
	   {"@type":"Telemetry","name":"levels","schema":{"@type":"Map","mapKey":{"name":"k","schema":"string"},"mapValue":{"name":"v","schema":{"@type":"Array","elementSchema":"integer"}}}},
	   {"@type":"Command","name":"go","request":{"name":"r","schema":"string","nullable":true}}]}]`
	list, err := model.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	repo := map[string]*model.Interface{}
	for _, it := range list {
		repo[it.ID] = it
	}
	m, err := model.Compile("dtmi:x:dev;2", func(id string) *model.Interface { return repo[id] })
	if err != nil {
		t.Fatal(err)
	}
	if m.Default.DisplayName != "Device" || len(m.Default.Telemetry) != 3 || m.Default.Telemetry[0].Name != "id" {
		t.Fatalf("default: %+v", m.Default)
	}
	if p := m.CheckTelemetry("", []byte(`{"mode":"on","levels":{"a":[1,2]},"id":"0b5e0b8e-59f5-4c0e-9d1e-4e55f0f1e0a1"}`)); p != nil {
		t.Fatalf("good telemetry: %v", p)
	}
	p := m.CheckTelemetry("", []byte(`{"mode":"dim","levels":{"a":[1,2.5]}}`))
	if len(p) != 2 || p[0].Path != "$.levels.a[1]" || p[1].Path != "$.mode" {
		t.Fatalf("bad telemetry: %v", p)
	}
}

func TestCheckTelemetry(t *testing.T) {
	m := compileController(t)
	good := []struct{ comp, body string }{
		{"thermostat1", `{"temperature":21.5}`},
		{"thermostat2", `{"temperature":-3}`},
		{"", `{"workingSet":1024}`},
	}
	for _, g := range good {
		if p := m.CheckTelemetry(g.comp, []byte(g.body)); p != nil {
			t.Errorf("%s %s: %v", g.comp, g.body, p)
		}
	}
	bad := []struct{ comp, body, path, msg string }{
		{"thermostat1", `{"temperature":"hot"}`, "$.temperature", "want a number"},
		{"thermostat1", `{"temp":21}`, "$.temp", "no telemetry"},
		{"", `{"temperature":21}`, "$.temperature", "default component"},
		{"thermostat9", `{"temperature":21}`, "$.sub", "no component"},
		{"thermostat1", `21`, "$", "JSON object"},
		{"thermostat1", `{temperature`, "$", "not JSON"},
	}
	for _, b := range bad {
		p := m.CheckTelemetry(b.comp, []byte(b.body))
		if len(p) != 1 || p[0].Path != b.path || !strings.Contains(p[0].Msg, b.msg) {
			t.Errorf("%s %s: %v, want %s ...%s...", b.comp, b.body, p, b.path, b.msg)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	m := compileController(t)
	for _, c := range []struct {
		name, payload string
		known, ok     bool
	}{
		{"thermostat1*getMaxMinReport", `"2026-11-23T05:00:00Z"`, true, true},
		{"thermostat1*getMaxMinReport", `null`, true, true},
		{"thermostat1*getMaxMinReport", ``, true, true},
		{"thermostat1*getMaxMinReport", `"yesterday"`, true, false},
		{"thermostat1*getMaxMinReport", `5`, true, false},
		{"reboot", `5`, true, true},
		{"reboot", `5.5`, true, false},
		{"reboot", `99999999999`, true, false},
		{"selfDestruct", `1`, false, true},
	} {
		known, probs := m.CheckCommand(c.name, []byte(c.payload))
		if known != c.known || (len(probs) == 0) != c.ok {
			t.Errorf("%s %s: known %v problems %v", c.name, c.payload, known, probs)
		}
	}
}

func TestWritableStates(t *testing.T) {
	m := compileController(t)
	desired := `{"thermostat1":{"__t":"c","targetTemperature":22},"thermostat2":{"__t":"c","targetTemperature":"warm"},"$version":5}`
	reported := `{"thermostat1":{"__t":"c","targetTemperature":{"value":22.0,"ac":200,"av":5,"ad":"completed"}},"$version":9}`
	st := model.WritableStates(m, json.RawMessage(desired), json.RawMessage(reported))
	if len(st) != 2 {
		t.Fatalf("states: %+v", st)
	}
	if s := st[0]; s.State != model.StateInSync || s.AckCode != 200 || s.AckVer != 5 || s.AckDesc != "completed" || s.DesiredV != 5 {
		t.Errorf("thermostat1: %+v", s)
	}
	if s := st[1]; s.State != model.StatePending || len(s.Problems) != 1 {
		t.Errorf("thermostat2: %+v", s)
	}
	reported = `{"thermostat1":{"__t":"c","targetTemperature":{"value":20,"ac":200,"av":4}},"thermostat2":{"targetTemperature":{"value":"warm","ac":400,"av":5,"ad":"not a number"}}}`
	st = model.WritableStates(m, json.RawMessage(desired), json.RawMessage(reported))
	if st[0].State != model.StatePending || st[1].State != model.StateRejected {
		t.Errorf("states: %s %s", st[0].State, st[1].State)
	}
}

func TestDesiredPatch(t *testing.T) {
	m := compileController(t)
	b, err := model.DesiredPatch(m, "thermostat1.targetTemperature", json.RawMessage(`23.5`))
	if err != nil || string(b) != `{"properties":{"desired":{"thermostat1":{"__t":"c","targetTemperature":23.5}}}}` {
		t.Fatalf("patch %s %v", b, err)
	}
	for _, c := range []struct{ path, val, msg string }{
		{"thermostat1.targetTemperature", `"hot"`, "want a number"},
		{"thermostat1.maxTempSinceLastReboot", `1`, "not writable"},
		{"thermostat9.targetTemperature", `1`, "no component"},
		{"serial", `1`, "no property"},
	} {
		if _, err := model.DesiredPatch(m, c.path, json.RawMessage(c.val)); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s=%s: %v, want ...%s...", c.path, c.val, err, c.msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../examples/thermostat/models/*.json")
	for _, name := range files {
		b, _ := os.ReadFile(name)
		f.Add(b)
	}
	f.Add([]byte(`{"@context":"dtmi:dtdl:context;3","@id":"dtmi:a:b;1","@type":"Interface","schemas":[{"@id":"dtmi:a:s;1","@type":"Array","elementSchema":"dtmi:a:s;1"}],"contents":[{"@type":"Telemetry","name":"t","schema":"dtmi:a:s;1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := model.Parse(data)
		if err != nil {
			var inv *model.InvalidError
			if !errors.As(err, &inv) || len(inv.Problems) == 0 {
				t.Fatalf("error %v is not an InvalidError with problems", err)
			}
			return
		}
		repo := map[string]*model.Interface{}
		for _, it := range list {
			if !model.ValidDTMI(it.ID, true) {
				t.Fatalf("accepted interface id %q", it.ID)
			}
			repo[it.ID] = it
		}
		for _, it := range list {
			m, err := model.Compile(it.ID, func(id string) *model.Interface { return repo[id] })
			if err != nil {
				continue
			}
			// Checking any value against any schema must not panic.
			for _, c := range append([]*model.Component{m.Default}, m.Components...) {
				m.CheckTelemetry(c.Name, data)
				m.CheckTelemetry(c.Name, []byte(`{"t":[[[1]]],"a":{"b":null}}`))
			}
			model.WritableStates(m, data, data)
		}
	})
}
