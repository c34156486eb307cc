package export

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"gopkg.in/yaml.v3"
)

type cfnSpec struct {
	Doc        string             `json:"doc"`
	Properties map[string]cfnSpec `json:"properties"`
}

type tfSpec struct {
	Doc        string            `json:"doc"`
	Attributes []string          `json:"attributes"`
	Blocks     map[string]tfSpec `json:"blocks"`
}

type allowList struct {
	CloudFormation map[string]cfnSpec `json:"cloudformation"`
	Terraform      struct {
		Resource map[string]tfSpec `json:"resource"`
		Data     map[string]tfSpec `json:"data"`
		Meta     []string          `json:"meta_arguments"`
	} `json:"terraform"`
}

func loadAllowList(t *testing.T) *allowList {
	t.Helper()
	b, err := os.ReadFile("testdata/allowlist.json")
	if err != nil {
		t.Fatal(err)
	}
	var a allowList
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("allowlist.json: %v", err)
	}
	for typ, s := range a.CloudFormation {
		if s.Doc == "" {
			t.Fatalf("allowlist: %s cites no documentation", typ)
		}
	}
	for typ, s := range a.Terraform.Resource {
		if s.Doc == "" {
			t.Fatalf("allowlist: %s cites no documentation", typ)
		}
	}
	return &a
}

func isIntrinsic(v map[string]any) bool {
	if len(v) != 1 {
		return false
	}
	for k := range v {
		return k == "Ref" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// checkCFNProps reports every key of v (and of nested objects the spec
// describes) that the allow-list does not name.
func checkCFNProps(path string, v any, spec map[string]cfnSpec, errs *[]string) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			checkCFNProps(fmt.Sprintf("%s[%d]", path, i), e, spec, errs)
		}
	case map[string]any:
		if isIntrinsic(x) {
			return
		}
		for k, val := range x {
			s, ok := spec[k]
			if !ok {
				*errs = append(*errs, path+"."+k)
				continue
			}
			if s.Properties != nil {
				checkCFNProps(path+"."+k, val, s.Properties, errs)
			}
		}
	}
}

// collectRefs finds every Ref and Fn::GetAtt target in v.
func collectRefs(v any, refs, atts map[string]bool) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			collectRefs(e, refs, atts)
		}
	case map[string]any:
		if r, ok := x["Ref"].(string); ok && len(x) == 1 {
			refs[r] = true
		}
		if g, ok := x["Fn::GetAtt"].([]any); ok && len(g) == 2 {
			atts[fmt.Sprint(g[0])] = true
		}
		for _, e := range x {
			collectRefs(e, refs, atts)
		}
	}
}

// checkCFN parses a template and returns the problems found.
func checkCFN(t *testing.T, b []byte, al *allowList) (map[string]int, []string) {
	t.Helper()
	var tpl map[string]any
	if err := yaml.Unmarshal(b, &tpl); err != nil {
		t.Fatalf("template is not YAML: %v", err)
	}
	var errs []string
	if tpl["AWSTemplateFormatVersion"] != "2010-09-09" {
		errs = append(errs, fmt.Sprintf("AWSTemplateFormatVersion = %#v", tpl["AWSTemplateFormatVersion"]))
	}
	res, _ := tpl["Resources"].(map[string]any)
	params, _ := tpl["Parameters"].(map[string]any)
	types := map[string]int{}
	for id, r := range res {
		rm := r.(map[string]any)
		typ, _ := rm["Type"].(string)
		types[typ]++
		spec, ok := al.CloudFormation[typ]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: resource type %s is not in the allow-list", id, typ))
			continue
		}
		for k := range rm {
			if k != "Type" && k != "Properties" && k != "DependsOn" {
				errs = append(errs, fmt.Sprintf("%s: unknown resource attribute %s", id, k))
			}
		}
		var bad []string
		checkCFNProps(id, rm["Properties"], spec.Properties, &bad)
		for _, p := range bad {
			errs = append(errs, fmt.Sprintf("%s: property %s is not in the allow-list of %s", id, p, typ))
		}
		if deps, ok := rm["DependsOn"].([]any); ok {
			for _, d := range deps {
				if _, ok := res[fmt.Sprint(d)]; !ok {
					errs = append(errs, fmt.Sprintf("%s: DependsOn %v does not exist", id, d))
				}
			}
		}
	}
	refs, atts := map[string]bool{}, map[string]bool{}
	collectRefs(res, refs, atts)
	collectRefs(tpl["Outputs"], refs, atts)
	for r := range refs {
		_, isRes := res[r]
		_, isParam := params[r]
		if !isRes && !isParam && !strings.HasPrefix(r, "AWS::") {
			errs = append(errs, "Ref to undefined "+r)
		}
	}
	for a := range atts {
		if _, ok := res[a]; !ok {
			errs = append(errs, "GetAtt of undefined "+a)
		}
	}
	sort.Strings(errs)
	return types, errs
}

func TestCloudFormationParsesAndUsesOnlyKnownProperties(t *testing.T) {
	t.Parallel()
	al := loadAllowList(t)
	plan, err := Build(fixtureApp(), Options{Image: "registry.example.com/shop:v1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := plan.CloudFormation()
	if err != nil {
		t.Fatal(err)
	}
	types, errs := checkCFN(t, b, al)
	for _, e := range errs {
		t.Error(e)
	}
	want := map[string]int{
		"AWS::ECS::Service": 2, "AWS::ECS::TaskDefinition": 3, "AWS::ElasticLoadBalancingV2::Listener": 2,
		"AWS::ElasticLoadBalancingV2::TargetGroup": 1, "AWS::ElasticLoadBalancingV2::LoadBalancer": 1,
		"AWS::Logs::LogGroup": 1, "AWS::IAM::Role": 1, "AWS::EC2::SecurityGroup": 2, "AWS::ECS::Cluster": 1,
	}
	for typ, n := range want {
		if types[typ] != n {
			t.Errorf("%d × %s, want %d", types[typ], typ, n)
		}
	}
	s := string(b)
	for _, want := range []string{"awslogs", "ValueFrom:\n                Ref: SecretDATABASEURLArn", "HTTP_301", "ReleaseTaskDefinition", "bin/rails db:migrate", "HealthCheckPath: /up"} {
		if !strings.Contains(s, want) {
			t.Errorf("template lacks %q", want)
		}
	}
}

// The checker must catch a property the allow-list does not name.
func TestCloudFormationCheckerCatchesUnknownProperty(t *testing.T) {
	t.Parallel()
	al := loadAllowList(t)
	plan, _ := Build(fixtureApp(), Options{Image: "x"})
	b, _ := plan.CloudFormation()
	bad := strings.Replace(string(b), "HealthCheckPath: /up", "HealthCheckPath: /up\n      HealthCheckUrl: /up", 1)
	if bad == string(b) {
		t.Fatal("could not alter the template")
	}
	_, errs := checkCFN(t, []byte(bad), al)
	if len(errs) != 1 || !strings.Contains(errs[0], "HealthCheckUrl") {
		t.Errorf("errors = %v, want one naming HealthCheckUrl", errs)
	}
}

func checkTFBody(path string, body *hclsyntax.Body, spec tfSpec, meta map[string]bool, errs *[]string) {
	attrs := map[string]bool{}
	for _, a := range spec.Attributes {
		attrs[a] = true
	}
	for name := range body.Attributes {
		if !attrs[name] && !meta[name] {
			*errs = append(*errs, path+": argument "+name+" is not in the allow-list")
		}
	}
	for _, blk := range body.Blocks {
		sub, ok := spec.Blocks[blk.Type]
		if !ok {
			*errs = append(*errs, path+": block "+blk.Type+" is not in the allow-list")
			continue
		}
		checkTFBody(path+"."+blk.Type, blk.Body, sub, meta, errs)
	}
}

// checkTF parses a Terraform file and returns the resource counts and the
// problems found: unknown types, arguments or blocks, and references to
// resources, data sources or variables that are not declared.
func checkTF(t *testing.T, src []byte, al *allowList) (map[string]int, []string) {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCL(src, "main.tf")
	if diags.HasErrors() {
		t.Fatalf("main.tf does not parse: %s", diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	meta := map[string]bool{}
	for _, m := range al.Terraform.Meta {
		meta[m] = true
	}
	var errs []string
	counts := map[string]int{}
	declared := map[string]bool{}
	for _, blk := range body.Blocks {
		switch blk.Type {
		case "resource", "data":
			typ, name := blk.Labels[0], blk.Labels[1]
			key := typ + "." + name
			if blk.Type == "data" {
				key = "data." + key
			}
			declared[key] = true
			counts[typ]++
			specs := al.Terraform.Resource
			if blk.Type == "data" {
				specs = al.Terraform.Data
			}
			spec, ok := specs[typ]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s %s is not in the allow-list", blk.Type, typ))
				continue
			}
			checkTFBody(key, blk.Body, spec, meta, &errs)
		case "variable":
			declared["var."+blk.Labels[0]] = true
		case "terraform", "provider", "output":
		default:
			errs = append(errs, "unexpected top-level block "+blk.Type)
		}
	}
	var walk func(b *hclsyntax.Body)
	walk = func(b *hclsyntax.Body) {
		for _, a := range b.Attributes {
			for _, tr := range a.Expr.Variables() {
				if ref := tfRefKey(tr); ref != "" && !declared[ref] {
					errs = append(errs, fmt.Sprintf("reference to undeclared %s", ref))
				}
			}
		}
		for _, blk := range b.Blocks {
			walk(blk.Body)
		}
	}
	walk(body)
	sort.Strings(errs)
	return counts, errs
}

// tfRefKey is the declaration a traversal refers to (var.x, type.name,
// data.type.name), or "" for references this check does not follow.
func tfRefKey(tr hcl.Traversal) string {
	var parts []string
	for _, s := range tr {
		switch x := s.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, x.Name)
		case hcl.TraverseAttr:
			parts = append(parts, x.Name)
		}
		if len(parts) == 3 {
			break
		}
	}
	switch {
	case len(parts) >= 2 && parts[0] == "var":
		return "var." + parts[1]
	case len(parts) >= 3 && parts[0] == "data":
		return strings.Join(parts[:3], ".")
	case len(parts) >= 2 && strings.HasPrefix(parts[0], "aws_"):
		return parts[0] + "." + parts[1]
	}
	return ""
}

func TestTerraformParsesAndUsesOnlyKnownArguments(t *testing.T) {
	t.Parallel()
	al := loadAllowList(t)
	plan, err := Build(fixtureApp(), Options{Image: "registry.example.com/shop:v1"})
	if err != nil {
		t.Fatal(err)
	}
	src := plan.Terraform()
	counts, errs := checkTF(t, src, al)
	for _, e := range errs {
		t.Error(e)
	}
	want := map[string]int{"aws_ecs_service": 2, "aws_ecs_task_definition": 3, "aws_lb_listener": 2, "aws_lb_target_group": 1, "aws_lb": 1, "aws_security_group": 2, "aws_iam_role_policy": 1}
	for typ, n := range want {
		if counts[typ] != n {
			t.Errorf("%d × %s, want %d", counts[typ], typ, n)
		}
	}
	s := string(src)
	for _, want := range []string{`awslogs-group`, `status_code = "HTTP_301"`, `path                = "/up"`, `valueFrom = data.aws_secretsmanager_secret.secret_SECRET_KEY_BASE.arn`, `name = "shop/SECRET_KEY_BASE"`, `"bin/rails", "db:migrate"`} {
		if !strings.Contains(s, want) {
			t.Errorf("main.tf lacks %q", want)
		}
	}
}

func TestTerraformCheckerCatchesUnknownArgumentAndReference(t *testing.T) {
	t.Parallel()
	al := loadAllowList(t)
	plan, _ := Build(fixtureApp(), Options{Image: "x"})
	src := string(plan.Terraform())
	bad := strings.Replace(src, `resource "aws_ecs_cluster" "app" {`, `resource "aws_ecs_cluster" "app" {
  capacity = aws_nat_gateway.main.id`, 1)
	if bad == src {
		t.Fatal("could not alter main.tf")
	}
	_, errs := checkTF(t, []byte(bad), al)
	joined := strings.Join(errs, "\n")
	if len(errs) != 2 || !strings.Contains(joined, "argument capacity") || !strings.Contains(joined, "undeclared aws_nat_gateway.main") {
		t.Errorf("errors = %v, want the unknown argument and the undeclared reference", errs)
	}
}
