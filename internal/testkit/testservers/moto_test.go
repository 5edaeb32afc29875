package testservers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/glue/types"
)

func tableInput(name, metadataLocation string) *types.TableInput {
	return &types.TableInput{
		Name:       aws.String(name),
		TableType:  aws.String("EXTERNAL_TABLE"),
		Parameters: map[string]string{"table_type": "ICEBERG", "metadata_location": metadataLocation},
	}
}

// TestMotoGlueVersionId pins how moto treats UpdateTable's VersionId, the
// optimistic lock real Glue checks. moto does not check it
// (docs/exactly-once.md, Known gaps): if this test starts failing, moto has learnt to, and concurrency tests
// can use it.
func TestMotoGlueVersionId(t *testing.T) {
	t.Parallel()
	g := Moto(t)
	client := glue.NewFromConfig(AWSConfig(t, nil, g, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	db := g.NewDatabase(t)

	if _, err := client.CreateTable(ctx, &glue.CreateTableInput{DatabaseName: aws.String(db), TableInput: tableInput("t", "s3://b/m1.json")}); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	version := func() string {
		out, err := client.GetTable(ctx, &glue.GetTableInput{DatabaseName: aws.String(db), Name: aws.String("t")})
		if err != nil {
			t.Fatalf("GetTable: %v", err)
		}
		return aws.ToString(out.Table.VersionId)
	}
	v1 := version()
	if _, err := client.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: aws.String(db), VersionId: aws.String(v1), TableInput: tableInput("t", "s3://b/m2.json")}); err != nil {
		t.Fatalf("UpdateTable with the current VersionId %q: %v", v1, err)
	}
	v2 := version()
	t.Logf("moto: VersionId %q after CreateTable, %q after one UpdateTable", v1, v2)

	_, err := client.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: aws.String(db), VersionId: aws.String(v1), TableInput: tableInput("t", "s3://b/m3.json")})
	var cme *types.ConcurrentModificationException
	switch {
	case err == nil:
		t.Logf("moto ACCEPTED UpdateTable with the stale VersionId %q (current %q): it cannot prove optimistic locking", v1, version())
	case errors.As(err, &cme):
		t.Fatalf("moto now REJECTS a stale VersionId (%v): update the package comment and docs/exactly-once.md (Known gaps), and use moto for concurrency tests", err)
	default:
		t.Fatalf("UpdateTable with a stale VersionId: unexpected error %v", err)
	}
}
