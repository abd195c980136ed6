package k8s

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// scaledObjectCRD is KEDA's published CustomResourceDefinition of ScaledObject (its header says
// where it comes from). Checking against it instead of decoding into KEDA's Go types keeps KEDA's
// module, and the controller-runtime and client-go it drags in, out of the build.
const scaledObjectCRD = "testdata/keda.sh_scaledobjects.yaml"

// scaledObject is the part of a KEDA ScaledObject these tests read. It is decoded only after the
// whole document has passed KEDA's schema (checkScaledObject), so leniency here drops nothing.
type scaledObject struct {
	Spec struct {
		ScaleTargetRef *struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// crdSchema reads the openAPIV3Schema of one version of a CustomResourceDefinition file, as plain
// maps (the apiextensions types would bring the API server's machinery with them).
func crdSchema(path, version string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CRD: %w", err)
	}
	var crd struct {
		Kind string `json:"kind"`
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, fmt.Errorf("decode CRD %s: %w", path, err)
	}
	if crd.Kind != "CustomResourceDefinition" {
		return nil, fmt.Errorf("%s is a %q, not a CustomResourceDefinition", path, crd.Kind)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name == version && v.Schema.OpenAPIV3Schema != nil {
			return v.Schema.OpenAPIV3Schema, nil
		}
	}
	return nil, fmt.Errorf("CRD %s has no schema for version %s", path, version)
}

// schemaError is one way a document breaks its schema, at the field path it names.
type schemaError struct{ path, problem string }

func (e schemaError) Error() string { return e.path + ": " + e.problem }

// checkScaledObject checks one rendered ScaledObject as an API server with KEDA's CRD and strict
// field validation would (kubectl's default since 1.27): its metadata is decoded strictly into
// ObjectMeta, which the API server validates itself (the CRD says only "object"), and the rest is
// checked against the schema.
func checkScaledObject(doc []byte, schema map[string]any) []error {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return []error{err}
	}
	var errs []error
	if obj["apiVersion"] != "keda.sh/v1alpha1" {
		errs = append(errs, schemaError{"apiVersion", fmt.Sprintf("%v, the schema checked is keda.sh/v1alpha1's", obj["apiVersion"])})
	}
	if meta, ok := obj["metadata"]; ok {
		raw, err := yaml.Marshal(meta)
		if err == nil {
			err = yaml.UnmarshalStrict(raw, &metav1.ObjectMeta{})
		}
		if err != nil {
			errs = append(errs, schemaError{"metadata", err.Error()})
		}
		delete(obj, "metadata")
	}
	for _, e := range checkSchema("", obj, schema) {
		errs = append(errs, e)
	}
	return errs
}

// checkSchema walks v against a structural OpenAPI v3 schema of a CRD: a field the schema does not
// declare is unknown (unless the schema keeps unknown fields or allows additional properties),
// types, required fields, enums and the minimums KEDA declares are checked. CEL rules
// (x-kubernetes-validations), patterns and formats are not: those are the API server's at apply.
func checkSchema(path string, v any, s map[string]any) []schemaError {
	fail := func(format string, args ...any) []schemaError {
		return []schemaError{{path: strings.TrimPrefix(path, "."), problem: fmt.Sprintf(format, args...)}}
	}
	if v == nil {
		if s["nullable"] == true {
			return nil
		}
		return fail("null, want %v", s["type"])
	}
	if s["x-kubernetes-int-or-string"] == true {
		if _, ok := v.(string); ok || isInteger(v) {
			return nil
		}
		return fail("%T, want an integer or a string", v)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		return fail("%v is not one of %v", v, enum)
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fail("%T, want an object", v)
		}
		return checkObject(path, m, s)
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fail("%T, want an array", v)
		}
		if min, ok := s["minItems"].(float64); ok && float64(len(a)) < min {
			return fail("%d items, want at least %v", len(a), min)
		}
		items, _ := s["items"].(map[string]any)
		var errs []schemaError
		for i, item := range a {
			errs = append(errs, checkSchema(fmt.Sprintf("%s[%d]", path, i), item, items)...)
		}
		return errs
	case "string":
		str, ok := v.(string)
		if !ok {
			return fail("%T %v, want a string", v, v)
		}
		if min, ok := s["minLength"].(float64); ok && float64(len(str)) < min {
			return fail("%q shorter than %v", str, min)
		}
	case "integer", "number":
		n, ok := v.(float64)
		if !ok || (s["type"] == "integer" && !isInteger(v)) {
			return fail("%T %v, want an %s", v, v, s["type"])
		}
		if min, ok := s["minimum"].(float64); ok && n < min {
			return fail("%v under the minimum %v", n, min)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fail("%T %v, want a boolean", v, v)
		}
	default:
		if s["x-kubernetes-preserve-unknown-fields"] != true {
			return fail("the schema declares no type %v", s["type"])
		}
	}
	return nil
}

// checkObject checks the fields of an object against its schema's properties, required fields
// and additionalProperties, in the order of the field names.
func checkObject(path string, m map[string]any, s map[string]any) []schemaError {
	var errs []schemaError
	required, _ := s["required"].([]any)
	for _, r := range required {
		if _, ok := m[fmt.Sprint(r)]; !ok {
			errs = append(errs, schemaError{path: strings.TrimPrefix(path+"."+fmt.Sprint(r), "."), problem: "required field missing"})
		}
	}
	props, _ := s["properties"].(map[string]any)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		field := path + "." + k
		if p, ok := props[k].(map[string]any); ok {
			errs = append(errs, checkSchema(field, m[k], p)...)
			continue
		}
		switch ap := s["additionalProperties"].(type) {
		case map[string]any:
			errs = append(errs, checkSchema(field, m[k], ap)...)
		case bool:
			if !ap {
				errs = append(errs, schemaError{path: strings.TrimPrefix(field, "."), problem: "unknown field"})
			}
		default:
			if s["x-kubernetes-preserve-unknown-fields"] != true {
				errs = append(errs, schemaError{path: strings.TrimPrefix(field, "."), problem: "unknown field"})
			}
		}
	}
	return errs
}

// isInteger says whether a decoded JSON number is whole (JSON decodes every number to float64).
func isInteger(v any) bool {
	n, ok := v.(float64)
	return ok && n == math.Trunc(n) && !math.IsInf(n, 0)
}

// TestScaledObjectSchemaCheck: the check of the ScaledObjects refuses what KEDA's CRD refuses, and
// what strict field validation reports of a misspelt field.
func TestScaledObjectSchemaCheck(t *testing.T) {
	schema, err := crdSchema(scaledObjectCRD, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	const valid = `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x, namespace: amrpipe, labels: {a: b}}
spec:
  scaleTargetRef: {name: x}
  minReplicaCount: 1
  maxReplicaCount: 10
  advanced: {horizontalPodAutoscalerConfig: {behavior: {scaleDown: {tolerance: "0.05"}}}}
  triggers:
    - type: nats-jetstream
      metadata: {stream: S, consumer: c, lagThreshold: "4"}
`
	for _, tt := range []struct {
		name, from, to string
		want           []string // the paths of the errors, in order
	}{
		{name: "valid"},
		{name: "misspelt field", from: "minReplicaCount: 1", to: "minReplicas: 1", want: []string{"spec.minReplicas"}},
		{name: "misspelt nested field", from: "metadata: {stream", to: "metdata: {stream", want: []string{"spec.triggers[0].metadata", "spec.triggers[0].metdata"}},
		{name: "misspelt metadata field", from: "labels:", to: "label:", want: []string{"metadata"}},
		{name: "wrong type", from: "maxReplicaCount: 10", to: `maxReplicaCount: "10"`, want: []string{"spec.maxReplicaCount"}},
		{name: "number as trigger metadata", from: `lagThreshold: "4"`, to: "lagThreshold: 4", want: []string{"spec.triggers[0].metadata.lagThreshold"}},
		{name: "fraction for an integer", from: "maxReplicaCount: 10", to: "maxReplicaCount: 1.5", want: []string{"spec.maxReplicaCount"}},
		{name: "under the minimum", from: "maxReplicaCount: 10", to: "maxReplicaCount: 0", want: []string{"spec.maxReplicaCount"}},
		{name: "int or string", from: `tolerance: "0.05"`, to: "tolerance: true", want: []string{"spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.tolerance"}},
		{name: "missing required field", from: "scaleTargetRef: {name: x}", to: "scaleTargetRef: {kind: Deployment}", want: []string{"spec.scaleTargetRef.name"}},
		{name: "no triggers", from: "triggers:\n    - type: nats-jetstream\n      metadata: {stream: S, consumer: c, lagThreshold: \"4\"}", to: "triggers: []", want: []string{"spec.triggers"}},
		{name: "enum", from: "minReplicaCount: 1", to: "fallback: {behavior: sometimes, failureThreshold: 3, replicas: 2}", want: []string{"spec.fallback.behavior"}},
		{name: "other version", from: "keda.sh/v1alpha1", to: "keda.sh/v1", want: []string{"apiVersion"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(valid, tt.from, tt.to, 1)
			if doc == valid && tt.from != "" {
				t.Fatalf("%q is not in the valid document", tt.from)
			}
			var got []string
			for _, err := range checkScaledObject([]byte(doc), schema) {
				se, ok := err.(schemaError)
				if !ok {
					t.Fatalf("error %v is no schemaError", err)
				}
				got = append(got, se.path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors at %v, want at %v", checkScaledObject([]byte(doc), schema), tt.want)
			}
		})
	}
}
