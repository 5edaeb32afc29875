package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// cfn evaluates the few intrinsic functions deploy/template.yaml's
// JobDataPolicy uses (Ref, Sub, Select, Split, Join, If, Not, Equals) for
// given parameters, so a test can read the policy a deployment gets.
type cfn struct {
	params map[string]string
	conds  map[string]*yaml.Node
}

func (c *cfn) eval(t *testing.T, n *yaml.Node) any {
	t.Helper()
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!Ref":
			return c.ref(t, n.Value)
		case "!Sub":
			return c.sub(t, n.Value, nil)
		}
		return n.Value
	case yaml.SequenceNode:
		args := n.Content
		switch n.Tag {
		case "!Sub":
			vars := map[string]string{}
			for i := 0; i+1 < len(args[1].Content); i += 2 {
				vars[args[1].Content[i].Value] = fmt.Sprint(c.eval(t, args[1].Content[i+1]))
			}
			return c.sub(t, args[0].Value, vars)
		case "!Select":
			i, err := strconv.Atoi(args[0].Value)
			l, _ := c.eval(t, args[1]).([]any)
			if err != nil || i >= len(l) {
				t.Fatalf("line %d: !Select %s of %d items", n.Line, args[0].Value, len(l))
			}
			return l[i]
		case "!Split":
			var out []any
			for _, s := range strings.Split(fmt.Sprint(c.eval(t, args[1])), args[0].Value) {
				out = append(out, s)
			}
			return out
		case "!Join":
			var parts []string
			for _, v := range c.list(t, args[1]) {
				parts = append(parts, fmt.Sprint(v))
			}
			return strings.Join(parts, args[0].Value)
		case "!If":
			if c.cond(t, args[0].Value) {
				return c.eval(t, args[1])
			}
			return c.eval(t, args[2])
		case "!Not":
			return !c.eval(t, args[0]).(bool)
		case "!Equals":
			return fmt.Sprint(c.eval(t, args[0])) == fmt.Sprint(c.eval(t, args[1]))
		}
		return c.list(t, n)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := c.eval(t, n.Content[i+1]); v != noValue {
				m[n.Content[i].Value] = v
			}
		}
		return m
	}
	t.Fatalf("line %d: cannot evaluate %v", n.Line, n.Tag)
	return nil
}

// noValue is AWS::NoValue: the item or key is left out.
var noValue = &struct{}{}

func (c *cfn) list(t *testing.T, n *yaml.Node) []any {
	var out []any
	for _, it := range n.Content {
		if v := c.eval(t, it); v != noValue {
			out = append(out, v)
		}
	}
	return out
}

func (c *cfn) ref(t *testing.T, name string) any {
	t.Helper()
	if name == "AWS::NoValue" {
		return noValue
	}
	v, ok := c.params[name]
	if !ok {
		t.Fatalf("no value for %s", name)
	}
	return v
}

func (c *cfn) cond(t *testing.T, name string) bool {
	t.Helper()
	n, ok := c.conds[name]
	if !ok {
		t.Fatalf("no condition %s", name)
	}
	return c.eval(t, n).(bool)
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

func (c *cfn) sub(t *testing.T, s string, vars map[string]string) string {
	return subVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		return fmt.Sprint(c.ref(t, name))
	})
}

// statement is an IAM policy statement, as far as the test reads it.
type statement struct {
	Effect    string
	Action    any
	Resource  any
	Condition map[string]map[string]any
}

func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// iamMatch matches an IAM pattern: * any run of characters, ? one.
func iamMatch(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

// allows reports whether the statements allow action on resource; prefix
// is the s3:prefix of a ListBucket ("" for other actions).
func allows(stmts []statement, action, resource, prefix string) bool {
	for _, st := range stmts {
		if st.Effect != "Allow" || !slices.ContainsFunc(strs(st.Action), func(a string) bool { return iamMatch(a, action) }) ||
			!slices.ContainsFunc(strs(st.Resource), func(r string) bool { return iamMatch(r, resource) }) {
			continue
		}
		if like, ok := st.Condition["StringLike"]; ok {
			if p, ok := like["s3:prefix"]; ok && !slices.ContainsFunc(strs(p), func(pat string) bool { return iamMatch(pat, prefix) }) {
				continue
			}
		}
		return true
	}
	return false
}

// templatePolicy is the template's JobDataPolicy for the parameters.
func templatePolicy(t *testing.T, params map[string]string) []statement {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	get := func(n *yaml.Node, key string) *yaml.Node {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		t.Fatalf("line %d: no %s", n.Line, key)
		return nil
	}
	root := doc.Content[0]
	c := &cfn{params: map[string]string{"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"},
		conds: map[string]*yaml.Node{}}
	ps := get(root, "Parameters")
	for i := 0; i+1 < len(ps.Content); i += 2 {
		name := ps.Content[i].Value
		if v, ok := params[name]; ok {
			c.params[name] = v
		} else if d := ps.Content[i+1]; slices.ContainsFunc(d.Content, func(n *yaml.Node) bool { return n.Value == "Default" }) {
			c.params[name] = get(d, "Default").Value
		}
	}
	cs := get(root, "Conditions")
	for i := 0; i+1 < len(cs.Content); i += 2 {
		c.conds[cs.Content[i].Value] = cs.Content[i+1]
	}
	doc2 := get(get(get(get(root, "Resources"), "JobDataPolicy"), "Properties"), "PolicyDocument")
	return decodePolicy(t, c.eval(t, doc2))
}

func decodePolicy(t *testing.T, v any) []statement {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Statement []statement }
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p.Statement
}

// access is one request a policy must allow or refuse.
type access struct {
	action, resource, prefix string
	ok                       bool
}

func checkAccess(t *testing.T, what string, stmts []statement, cases []access) {
	t.Helper()
	for _, c := range cases {
		if got := allows(stmts, c.action, c.resource, c.prefix); got != c.ok {
			t.Errorf("%s: %s on %s (prefix %q) allowed %v, want %v", what, c.action, c.resource, c.prefix, got, c.ok)
		}
	}
}

// The policy a deployment gets reaches only the tables it names: their
// DMS folders (read), their Iceberg tables and bookmarks (read, write,
// delete) and their Glue tables; nothing of another table of the
// database, another schema's folders, or another database. The one-table
// policy of deploy/iam-policy.json likewise.
func TestIAMPolicyReachesOnlyTheNamedTables(t *testing.T) {
	const raw, lake = "arn:aws:s3:::dms-bucket", "arn:aws:s3:::lake"
	const glue = "arn:aws:glue:eu-west-1:123456789012:"
	params := map[string]string{"RawBucket": "dms-bucket", "WarehouseBucket": "lake", "GlueDatabase": "test_db",
		"AllowedTables": "users,orders_*", "CodeBucket": "c", "CodeKey": "k"}
	table := func(name string, ok bool) []access {
		return []access{
			{"s3:GetObject", raw + "/raw_input/test_db/" + name + "/20240814-002642123.parquet", "", ok},
			{"s3:GetObject", raw + "/raw_input/test_db/" + name + "/2024/08/14/LOAD00000001.parquet", "", ok},
			{"s3:PutObject", lake + "/warehouse/test_db.db/" + name + "/data/00000-0.parquet", "", ok},
			{"s3:DeleteObject", lake + "/warehouse/test_db.db/" + name + "/metadata/00001.metadata.json", "", ok},
			{"s3:PutObject", lake + "/warehouse/_icemerge/test_db." + name + "/state.json", "", ok},
			{"s3:GetObject", lake + "/warehouse/_icemerge/test_db." + name + "/lock.json", "", ok},
			{"glue:UpdateTable", glue + "table/test_db/" + name, "", ok},
			{"glue:CreateTable", glue + "table/test_db/" + name, "", ok},
		}
	}
	never := []access{
		// Raw files are never written or deleted, other schemas never read.
		{"s3:PutObject", raw + "/raw_input/test_db/users/x.parquet", "", false},
		{"s3:DeleteObject", raw + "/raw_input/test_db/users/x.parquet", "", false},
		{"s3:GetObject", raw + "/raw_input/other_db/users/x.parquet", "", false},
		{"s3:ListBucket", raw, "raw_input/other_db/users/", false},
		{"s3:ListBucket", raw, "raw_input/", false},
		{"s3:GetObject", raw + "/elsewhere/test_db/users/x.parquet", "", false},
		// Other databases, in the lake and in Glue.
		{"s3:PutObject", lake + "/warehouse/other_db.db/users/data/x.parquet", "", false},
		{"s3:PutObject", lake + "/warehouse/_icemerge/other_db.users/state.json", "", false},
		{"glue:UpdateTable", glue + "table/other_db/users", "", false},
		{"glue:DeleteTable", glue + "table/test_db/users", "", false},
		// Listing: the schema folder (a database run lists its tables), the
		// database's tables and bookmarks.
		{"s3:ListBucket", raw, "raw_input/test_db/users/", true},
		{"s3:ListBucket", raw, "raw_input/test_db/", true},
		{"s3:ListBucket", lake, "warehouse/test_db.db/users/", true},
	}
	named := templatePolicy(t, params)
	checkAccess(t, "template, users and orders_*", named, slices.Concat(table("users", true), table("orders_2024", true), table("posts", false), table("users_old", false), never))

	params["AllowedTables"] = "*"
	checkAccess(t, "template, every table", templatePolicy(t, params), slices.Concat(table("users", true), table("posts", true), never))

	params["AllowedTables"], params["SourceSchema"] = "users", "shop"
	checkAccess(t, "template, source schema shop", templatePolicy(t, params), []access{
		{"s3:GetObject", raw + "/raw_input/shop/users/x.parquet", "", true},
		{"s3:GetObject", raw + "/raw_input/test_db/users/x.parquet", "", false},
		{"s3:ListBucket", raw, "raw_input/shop/", true},
	})

	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("RAW_BUCKET", "dms-bucket", "LAKE_BUCKET", "lake", "REGION", "eu-west-1", "ACCOUNT", "123456789012",
		"DB", "test_db", "TABLE", "users")
	var doc any
	if err := json.Unmarshal([]byte(r.Replace(string(b))), &doc); err != nil {
		t.Fatal(err)
	}
	one := decodePolicy(t, doc)
	oneNever := slices.DeleteFunc(slices.Clone(never), func(a access) bool {
		return a.prefix == "raw_input/test_db/" // the one-table policy lists the table's folder only
	})
	checkAccess(t, "iam-policy.json", one, slices.Concat(table("users", true), table("posts", false), table("users_old", false), oneNever))
}
