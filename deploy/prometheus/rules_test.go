// Package prometheus holds the checks of the alert rules (alerts.yml) and of the Grafana dashboard
// (../grafana/dashboards/amrpipe.json): both load as Prometheus and Grafana would load them, and
// every metric they query is one the stages really export, collected from the registries of the
// five stages run as their binaries run them.
package prometheus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// exportedMetrics returns the name of every metric the five stages register, read from their
// running registries (Registry.Describe lists a vector before it has a series; /metrics does not).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	js := testenv.StartJetStream(t)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for _, d := range registry.All() {
		m := testenv.StartStage(t, js, d)
		descs := make(chan *prometheus.Desc)
		go func() {
			m.Runtime().Registry.Describe(descs)
			close(descs)
		}()
		for desc := range descs {
			match := fqName.FindStringSubmatch(desc.String())
			if match == nil {
				t.Fatalf("%s: no name in %s", d.Name, desc)
			}
			names[match[1]] = true
		}
	}
	if !names["amr_stage_messages_total"] || !names["amr_relay_followed_jobs"] || !names["amr_parser_records_total"] {
		t.Fatalf("the stages' registries list %d metrics, without the stage, relay or parser ones", len(names))
	}
	return names
}

// known: a name the stages export, or a series Prometheus derives from a histogram or summary.
func known(exported map[string]bool, name string) bool {
	if exported[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
			return true
		}
	}
	return false
}

// metricNames returns the metric names an expression selects; an expression that does not parse
// is an error.
func metricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// ruleGroups is the rule file format as Prometheus v0.315.1's model/rulefmt declares it
// (RuleGroups, RuleGroup, Rule). rulefmt itself is not imported: it checks templates with
// Prometheus' template package, which brings the PromQL engine and, through its logging,
// client-go; loadRules repeats its checks instead.
type ruleGroups struct {
	Groups []struct {
		Name        string            `yaml:"name"`
		Interval    model.Duration    `yaml:"interval,omitempty"`
		QueryOffset *model.Duration   `yaml:"query_offset,omitempty"`
		Limit       int               `yaml:"limit,omitempty"`
		Rules       []rule            `yaml:"rules"`
		Labels      map[string]string `yaml:"labels,omitempty"`
	} `yaml:"groups"`
}

type rule struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           model.Duration    `yaml:"for,omitempty"`
	KeepFiringFor model.Duration    `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// templateFuncs are the functions Prometheus' alert templates may call (template.NewTemplateExpander
// in Prometheus v0.315.1's template/template.go); parsing a template only needs their names.
var templateFuncs = []string{"query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml",
	"match", "title", "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel", "stripPort", "stripDomain",
	"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime",
	"toDuration", "now", "pathPrefix", "externalURL", "parseDuration", "urlQueryEscape", "tmpl"}

// parseRules checks a rule file as Prometheus' rulefmt.Parse does at startup: unknown fields
// refused, group names unique, each rule an alert or a recording, every expression parsed, label
// and annotation names valid, and every alert's label and annotation templates parsed.
func parseRules(data []byte) (*ruleGroups, []error) {
	var groups ruleGroups
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&groups); err != nil {
		return nil, []error{err}
	}
	p := parser.NewParser(parser.Options{})
	funcs := template.FuncMap{}
	for _, name := range templateFuncs {
		funcs[name] = func(...any) any { return nil }
	}
	var errs []error
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		if g.Name == "" || seen[g.Name] {
			errs = append(errs, fmt.Errorf("group name %q empty or repeated", g.Name))
		}
		seen[g.Name] = true
		errs = append(errs, checkLabels("group "+g.Name, g.Labels)...)
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d (%s%s)", g.Name, i+1, r.Alert, r.Record)
			if (r.Record == "") == (r.Alert == "") {
				errs = append(errs, fmt.Errorf("%s: exactly one of record and alert must be set", where))
			}
			if _, err := p.ParseExpr(r.Expr); err != nil {
				errs = append(errs, fmt.Errorf("%s: expression: %w", where, err))
			}
			if r.Record != "" && (len(r.Annotations) > 0 || r.For != 0 || r.KeepFiringFor != 0 || !model.UTF8Validation.IsValidMetricName(r.Record)) {
				errs = append(errs, fmt.Errorf("%s: a recording rule with annotations, for, keep_firing_for or an invalid name", where))
			}
			errs = append(errs, checkLabels(where, r.Labels)...)
			for k, v := range r.Annotations {
				if !model.UTF8Validation.IsValidLabelName(k) {
					errs = append(errs, fmt.Errorf("%s: invalid annotation name %q", where, k))
				}
				errs = append(errs, parseTemplate(where, r, "annotation "+k, v, funcs)...)
			}
			for k, v := range r.Labels {
				errs = append(errs, parseTemplate(where, r, "label "+k, v, funcs)...)
			}
		}
	}
	return &groups, errs
}

// checkLabels checks label names and values as rulefmt does (no __name__ among them).
func checkLabels(where string, labels map[string]string) []error {
	var errs []error
	for k, v := range labels {
		if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel || !model.LabelValue(v).IsValid() {
			errs = append(errs, fmt.Errorf("%s: invalid label %q=%q", where, k, v))
		}
	}
	return errs
}

// parseTemplate parses an alert's label or annotation template with the variables Prometheus
// defines for it, as rulefmt's testTemplateParsing does.
func parseTemplate(where string, r rule, what, text string, funcs template.FuncMap) []error {
	if r.Alert == "" {
		return nil
	}
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	if _, err := template.New(r.Alert).Funcs(funcs).Option("missingkey=zero").Parse(defs + text); err != nil {
		return []error{fmt.Errorf("%s: %s: %w", where, what, err)}
	}
	return nil
}

// loadRules parses alerts.yml as Prometheus does at startup (parseRules).
func loadRules(t *testing.T) *ruleGroups {
	t.Helper()
	data, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := parseRules(data)
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatal("alerts.yml: no rule groups")
	}
	return groups
}

// TestParseRulesRefusesWhatPrometheusRefuses: the loader the tests rely on fails on the mistakes
// Prometheus would refuse the file for at startup.
func TestParseRulesRefusesWhatPrometheusRefuses(t *testing.T) {
	const valid = `groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.job }} down: {{ $value | humanize }}"}
`
	for _, tt := range []struct {
		name, from, to string
		err            bool
	}{
		{name: "valid"},
		{name: "misspelt field", from: "for: 5m", to: "four: 5m", err: true},
		{name: "bad expression", from: "up == 0", to: "up ==", err: true},
		{name: "unknown template function", from: "humanize }}", to: "humanise }}", err: true},
		{name: "bad duration", from: "for: 5m", to: "for: 5 minutes", err: true},
		{name: "record and alert", from: "- alert: A", to: "- alert: A\n        record: a", err: true},
		{name: "metric name as a label", from: "{severity: warning}", to: "{severity: warning, __name__: up}", err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(valid, tt.from, tt.to, 1)
			if doc == valid && tt.from != "" {
				t.Fatalf("%q is not in the valid file", tt.from)
			}
			_, errs := parseRules([]byte(doc))
			if (len(errs) > 0) != tt.err {
				t.Errorf("errors %v, want errors: %v", errs, tt.err)
			}
		})
	}
}

// TestAlertRules: the rules load, each has a severity and a summary, and together they cover
// what an operator must hear of: SharePoint throttling past Microsoft's escalation point,
// growing lag, dead letters, stuck handlers and stalled jobs, filling streams.
func TestAlertRules(t *testing.T) {
	groups := loadRules(t)
	p := parser.NewParser(parser.Options{})
	var alerts []string
	uses := map[string][]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %q; this file holds alerts", g.Name, r.Record)
				continue
			}
			alerts = append(alerts, r.Alert)
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", r.Alert)
			}
			names, err := metricNames(p, r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			uses[r.Alert] = names
		}
	}
	for _, want := range []struct{ alert, metric string }{
		{"AmrSharePointThrottledOver30Percent", "amr_sharepoint_responses_total"},
		{"AmrConsumerLagGrowing", "amr_stage_consumer_pending"},
		{"AmrDeadLetters", "amr_stage_messages_total"},
		{"AmrHandlersStuck", "amr_stage_handlers_stuck"},
		{"AmrJobsStalled", "amr_parser_jobs_stalled_total"},
		{"AmrStreamFilling", "amr_stream_max_bytes"},
	} {
		if !slices.Contains(uses[want.alert], want.metric) {
			t.Errorf("alert %s is missing or does not read %s (alerts: %v)", want.alert, want.metric, alerts)
		}
	}
	var throttled *rule
	for _, g := range groups.Groups {
		for i, r := range g.Rules {
			if r.Alert == "AmrSharePointThrottledOver30Percent" {
				throttled = &g.Rules[i]
			}
		}
	}
	// Microsoft's rule: more than 30 % of requests throttled over 30 minutes.
	if throttled == nil || !strings.Contains(throttled.Expr, "[30m]") || !strings.Contains(throttled.Expr, "> 0.30") || !strings.Contains(throttled.Expr, `status=~"429|503"`) {
		t.Errorf("the throttling alert is not Microsoft's 30 %%-over-30-minutes rule: %+v", throttled)
	}
}

// dashboard is the part of Grafana's dashboard model this file uses; decoding refuses any other
// field, so a misspelt one fails here instead of being ignored by Grafana.
type dashboard struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Timezone      string   `json:"timezone"`
	Editable      bool     `json:"editable"`
	SchemaVersion int      `json:"schemaVersion"`
	Version       int      `json:"version"`
	Refresh       string   `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Label string `json:"label"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Collapsed   bool        `json:"collapsed"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *datasource `json:"datasource"`
	} `json:"targets"`
	FieldConfig *struct {
		Defaults struct {
			Unit       string   `json:"unit"`
			Min        *float64 `json:"min"`
			Max        *float64 `json:"max"`
			Thresholds *struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "grafana", "dashboards", "amrpipe.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("amrpipe.json: %v", err)
	}
	return d
}

// grafanaVariables are the dashboard's built-in interval variables, as Grafana would substitute
// them before the query reaches Prometheus.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

// TestDashboard: the dashboard decodes, its panels have unique ids and do not overlap, every
// query parses as PromQL, and it shows what an operator looks at: per-stage throughput, lag,
// in-flight, errors and dead letters; jobs by state; SharePoint calls and the throttled share per
// host; stream fill.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q with %d panels", d.UID, d.Title, len(d.Panels))
	}
	p := parser.NewParser(parser.Options{})
	ids := map[int]bool{}
	used := map[string]bool{}
	type cell struct{ x, y int }
	taken := map[cell]int{}
	for _, pn := range d.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d twice", pn.ID)
		}
		ids[pn.ID] = true
		for x := pn.GridPos.X; x < pn.GridPos.X+pn.GridPos.W; x++ {
			for y := pn.GridPos.Y; y < pn.GridPos.Y+pn.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %d at %d,%d", pn.Title, other, x, y)
				}
				taken[cell{x, y}] = pn.ID
			}
		}
		if pn.GridPos.X+pn.GridPos.W > 24 {
			t.Errorf("panel %q reaches past the grid's 24 columns", pn.Title)
		}
		if pn.Type == "row" {
			continue
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		for _, tg := range pn.Targets {
			names, err := metricNames(p, grafanaVariables.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q query %s: %v", pn.Title, tg.RefID, err)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	for _, want := range []string{
		"amr_stage_messages_total",                 // throughput, errors and dead letters by outcome
		"amr_stage_consumer_pending",               // lag
		"amr_stage_in_flight",                      // in flight
		"amr_job_transitions_total",                // jobs by state
		"amr_sharepoint_responses_total",           // calls and throttled share per host
		"amr_stream_bytes", "amr_stream_max_bytes", // stream fill
	} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
}

// TestEveryQueriedMetricIsExported: each metric the rules and the dashboard query is registered
// by a stage, so that no panel stays empty and no alert is silently never evaluated to anything.
func TestEveryQueriedMetricIsExported(t *testing.T) {
	exported := exportedMetrics(t)
	p := parser.NewParser(parser.Options{})
	check := func(where, expr string) {
		names, err := metricNames(p, grafanaVariables.Replace(expr))
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
		for _, n := range names {
			if !known(exported, n) {
				t.Errorf("%s queries %s, which no stage exports", where, n)
			}
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
		}
	}
	for _, pn := range loadDashboard(t).Panels {
		for _, tg := range pn.Targets {
			check("panel "+pn.Title, tg.Expr)
		}
	}
}
