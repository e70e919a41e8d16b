// Command render renders a Helm chart's templates the way `helm template` does, for the
// test suite on machines without helm: Go's text/template with the sprig functions and
// Helm's own (include, tpl, required, toYaml, fromYaml, toJson, .Files.Get), values
// merged from values.yaml, -f files and --set a.b=c. It is a test tool, not a Helm.
//
// Usage: render [-f values.yaml]... [--set key=value]... [--release NAME] [--namespace NS] CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type files struct{ root string }

func (f files) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		return ""
	}
	return string(data)
}

func readYAML(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("reading %s: %v", path, err)
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		fail("parsing %s: %v", path, err)
	}
	return out
}

func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if sv, ok := v.(map[string]interface{}); ok {
			if dv, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func setPath(values map[string]interface{}, assignment string) {
	key, raw, ok := strings.Cut(assignment, "=")
	if !ok {
		fail("--set %q: expected key=value", assignment)
	}
	var value interface{} = raw
	if b, err := strconv.ParseBool(raw); err == nil {
		value = b
	} else if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
		value = i
	}
	parts := strings.Split(key, ".")
	node := values
	for _, part := range parts[:len(parts)-1] {
		next, ok := node[part].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			node[part] = next
		}
		node = next
	}
	node[parts[len(parts)-1]] = value
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	var valueFiles, sets multi
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "key=value (repeatable)")
	release := flag.String("release", "release", "release name")
	namespace := flag.String("namespace", "default", "namespace")
	flag.Parse()
	if flag.NArg() != 1 {
		fail("usage: render [-f values.yaml]... [--set k=v]... CHART_DIR")
	}
	chartDir := flag.Arg(0)

	chartFile := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	chart := map[string]interface{}{}
	for k, v := range chartFile {
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	values := readYAML(filepath.Join(chartDir, "values.yaml"))
	for _, path := range valueFiles {
		values = merge(values, readYAML(path))
	}
	for _, assignment := range sets {
		setPath(values, assignment)
	}
	name, _ := chart["Name"].(string)
	base := name + "/templates"

	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	funcs["toJson"] = func(v interface{}) string {
		data, _ := json.Marshal(v)
		return string(data)
	}
	funcs["required"] = func(message string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return v, fmt.Errorf(message)
		}
		return v, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs).Option("missingkey=zero")

	entries, err := os.ReadDir(filepath.Join(chartDir, "templates"))
	if err != nil {
		fail("reading templates: %v", err)
	}
	var names []string
	for _, entry := range entries {
		if entry.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(chartDir, "templates", entry.Name()))
		if err != nil {
			fail("reading %s: %v", entry.Name(), err)
		}
		full := base + "/" + entry.Name()
		if _, err := root.New(full).Parse(string(data)); err != nil {
			fail("parsing %s: %v", full, err)
		}
		names = append(names, full)
	}
	sort.Strings(names)

	var out bytes.Buffer
	for _, full := range names {
		file := filepath.Base(full)
		if strings.HasPrefix(file, "_") {
			continue
		}
		top := map[string]interface{}{
			"Values":  values,
			"Chart":   chart,
			"Release": map[string]interface{}{"Name": *release, "Namespace": *namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
			"Template": map[string]interface{}{"Name": full, "BasePath": base},
			"Files":   files{root: chartDir},
			"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{"Version": "v1.30.0"}},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, top); err != nil {
			fail("%v", err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if file == "NOTES.txt" || strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, strings.TrimSpace(text))
	}
	os.Stdout.Write(out.Bytes())
}
