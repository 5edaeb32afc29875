package icemerge

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
)

// What Athena needs of the Glue table, and the database created when
// missing.
func TestGlueTableForAthena(t *testing.T) {
	e := newEnv(t, "minio-glue")
	// A database that does not exist yet.
	db := strings.TrimSuffix(e.opts.Table, ".users") + "_new"
	e.opts.Table = db + ".users"
	e.reopen()
	e.copyFixture("LOAD00000001.parquet", "LOAD00000001.parquet")
	e.run()
	first := e.metadataLocation()
	e.copyFixture("20240814-002642123.parquet", "20240814-002642123.parquet")
	e.run()

	client := glue.NewFromConfig(*e.aws)
	out, err := client.GetTable(e.ctx, &glue.GetTableInput{DatabaseName: aws.String(db), Name: aws.String("users")})
	if err != nil {
		t.Fatal(err)
	}
	p := out.Table.Parameters
	if !strings.EqualFold(p["table_type"], "ICEBERG") {
		t.Errorf("table_type %q, want ICEBERG", p["table_type"])
	}
	if p["metadata_location"] != e.metadataLocation() || p["previous_metadata_location"] != first {
		t.Errorf("metadata_location %q (want %q), previous %q (want %q)", p["metadata_location"], e.metadataLocation(), p["previous_metadata_location"], first)
	}
	var cols []string
	for _, c := range out.Table.StorageDescriptor.Columns {
		cols = append(cols, aws.ToString(c.Name)+" "+aws.ToString(c.Type))
	}
	want := "user_id int,first_name string,last_name string,email string,created_at timestamp,updated_at timestamp"
	if strings.Join(cols, ",") != want {
		t.Errorf("columns %s\nwant    %s", strings.Join(cols, ","), want)
	}
	if loc := aws.ToString(out.Table.StorageDescriptor.Location); !strings.HasPrefix(loc, "s3://"+e.bucket+"/warehouse/"+db+".db/users") {
		t.Errorf("location %q", loc)
	}
}

func (e *env) metadataLocation() string {
	e.t.Helper()
	tbl, ok, err := e.cat.Load(e.ctx, e.opts.Table)
	if err != nil || !ok {
		e.t.Fatalf("load: %v %v", ok, err)
	}
	return tbl.MetadataLocation()
}
