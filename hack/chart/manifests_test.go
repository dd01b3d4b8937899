package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	serializerjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	buytrackerv1alpha1 "github.com/buytracker/buytracker/api/v1alpha1"
)

// manifest is one object of a rendered YAML stream, as generic JSON values,
// so that tests can compare any kind and mutate any field.
type manifest struct {
	obj map[string]any
}

func (m manifest) kind() string       { return str(m.obj, "kind") }
func (m manifest) apiVersion() string { return str(m.obj, "apiVersion") }
func (m manifest) name() string       { return str(m.obj, "metadata", "name") }
func (m manifest) namespace() string  { return str(m.obj, "metadata", "namespace") }

// key names the object the way messages do: "Role ns/name", "ClusterRole name".
func (m manifest) key() string {
	if ns := m.namespace(); ns != "" {
		return m.kind() + " " + ns + "/" + m.name()
	}
	return m.kind() + " " + m.name()
}

// decode decodes the object into its API type as the API server would,
// strictly: a field the type does not have (misspelt, misplaced) or a
// duplicate field is an error that names it.
func (m manifest) decode(into runtime.Object) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := buytrackerv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	raw, err := json.Marshal(m.obj)
	if err != nil {
		return err
	}
	decoder := serializerjson.NewSerializerWithOptions(serializerjson.DefaultMetaFactory, scheme, scheme, serializerjson.SerializerOptions{Strict: true})
	_, _, err = decoder.Decode(raw, nil, into)
	return err
}

// decodeField decodes a part of an object into a Go value, leniently.
func decodeField(v any, into any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}

// parseManifests splits a YAML stream (helm template, kustomize build) into
// objects; documents holding only comments are skipped.
func parseManifests(stream []byte) ([]manifest, error) {
	reader := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var ms []manifest
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return ms, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		raw, err := yaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w\n%s", i, err, doc)
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("document %d is not an object: %w\n%s", i, err, doc)
		}
		m := manifest{obj: obj}
		if m.apiVersion() == "" || m.kind() == "" || m.name() == "" {
			return nil, fmt.Errorf("document %d lacks apiVersion, kind or metadata.name:\n%s", i, doc)
		}
		ms = append(ms, m)
	}
}

// clone deep-copies manifests, so that a test can mutate one render while
// others read it.
func clone(t *testing.T, ms []manifest) []manifest {
	t.Helper()
	out := make([]manifest, len(ms))
	for i, m := range ms {
		raw, err := json.Marshal(m.obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &out[i].obj); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// only returns the single object of a kind, failing the test when there
// is none or more than one.
func only(t *testing.T, ms []manifest, kind string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if m.kind() == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// named returns the object of a kind with that name, failing the test when
// there is none.
func named(t *testing.T, ms []manifest, kind, name string) manifest {
	t.Helper()
	for _, m := range ms {
		if m.kind() == kind && m.name() == name {
			return m
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return manifest{}
}

// at walks maps by string keys and lists by int indexes; nil when a step is
// missing.
func at(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				return nil
			}
			v = l[p]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := at(v, path...).(string)
	return s
}

// object returns the map at path, failing the test when there is none.
func object(t *testing.T, v any, path ...any) map[string]any {
	t.Helper()
	m, ok := at(v, path...).(map[string]any)
	if !ok {
		t.Fatalf("no object at %v", path)
	}
	return m
}

// differences lists where two JSON values differ, one line per path with
// both sides; at most limit lines.
func differences(a, b any, limit int) []string {
	var out []string
	var walk func(path string, a, b any)
	walk = func(path string, a, b any) {
		if len(out) >= limit {
			return
		}
		am, aIsMap := a.(map[string]any)
		bm, bIsMap := b.(map[string]any)
		if aIsMap && bIsMap {
			keys := make([]string, 0, len(am)+len(bm))
			for k := range am {
				keys = append(keys, k)
			}
			for k := range bm {
				if _, ok := am[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(path+"."+k, am[k], bm[k])
			}
			return
		}
		al, aIsList := a.([]any)
		bl, bIsList := b.([]any)
		if aIsList && bIsList && len(al) == len(bl) {
			for i := range al {
				walk(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])
			}
			return
		}
		if !reflect.DeepEqual(a, b) {
			out = append(out, fmt.Sprintf("%s: config/default has %s, the chart %s", path, brief(a), brief(b)))
		}
	}
	walk("", a, b)
	return out
}

// brief is a value as compact JSON, cut to one short line.
func brief(v any) string {
	if v == nil {
		return "nothing"
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(raw)
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

// generic converts a typed value to generic JSON values, for differences.
func generic(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseManifestsSkipsCommentOnlyDocuments(t *testing.T) {
	stream := []byte("# a header\n---\n# Source: x\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: ns\n---\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n")
	ms, err := parseManifests(stream)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range ms {
		keys = append(keys, m.key())
	}
	if got, want := strings.Join(keys, ", "), "ServiceAccount ns/a, ServiceAccount b"; got != want {
		t.Errorf("keys = %s, want %s", got, want)
	}
}

func TestParseManifestsRejectsObjectsWithoutAName(t *testing.T) {
	if _, err := parseManifests([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {}\n")); err == nil {
		t.Error("parsed an object without metadata.name")
	}
}
