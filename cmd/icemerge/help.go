package main

import (
	"github.com/alecthomas/kong"

	"github.com/icemerge/icemerge/internal/clikit"
)

// examples are each command's examples, by command path.
var examples = map[string]string{
	"": `  # Apply a table's DMS folder (the first run creates the table; --key is its primary key):
  icemerge run --source ./raw_input/test_db/users --table test_db.users --key user_id
  # Check a deployment's access before its first run:
  icemerge check --catalog glue --source s3://dms/raw_input/test_db/users --warehouse s3://lake/warehouse --table test_db.users
  # Where a table stands, and its rows:
  icemerge status --table test_db.users --source ./raw_input/test_db/users
  icemerge show --table test_db.users --where user_id=42`,
	"run": `  # One table from a local DMS folder; tables under ./warehouse, catalog and bookmarks in ./warehouse/_icemerge:
  icemerge run --source ./raw_input/test_db/users --table test_db.users --key user_id
  # The plan, writing nothing (for a new table without --key: the files' columns):
  icemerge run --source ./raw_input/test_db/users --table test_db.users --dry-run
  # S3 into the Glue Data Catalog, a JSON report on stdout:
  AWS_REGION=eu-west-1 icemerge run --catalog glue --source s3://dms/raw_input/test_db/users --warehouse s3://lake/warehouse --table test_db.users --key user_id --report -
  # Every table of a schema folder (drop --table), keys per table in a YAML file:
  icemerge run --catalog glue --source s3://dms/raw_input/test_db/ --warehouse s3://lake/warehouse --config icemerge.yaml
  # No updated_at column: order each key's changes by the files alone:
  icemerge run --source ./raw_input/test_db/events --table test_db.events --key event_id --order-by source`,
	"check": `  # The permissions of a Glue deployment, before its first run (exit 0 only when every check passes):
  AWS_REGION=eu-west-1 icemerge check --catalog glue --source s3://dms/raw_input/test_db/users --warehouse s3://lake/warehouse --table test_db.users
  # The same settings as the deployment's runs, from its environment:
  ICEMERGE_SOURCE=s3://dms/raw_input/test_db/users ICEMERGE_TABLE=test_db.users icemerge check --json`,
	"show": `  # The first rows, by primary key:
  icemerge show --table test_db.users --limit 20
  # One key, reading only the files and row groups that may hold it:
  icemerge show --table test_db.users --where user_id=42
  # Every row as CSV, or as JSON lines for jq:
  icemerge show --table test_db.users --limit 0 --format csv > users.csv
  icemerge show --table test_db.users --format json | jq .email`,
	"maintain": `  # What maintenance would do, changing nothing:
  icemerge maintain --table test_db.users --dry-run
  # Compaction only, files of 256 MiB:
  icemerge maintain --table test_db.users --only compact --target-file-size 256MiB
  # Keep a day of snapshots (at least 3):
  icemerge maintain --table test_db.users --expire-older-than 1d --retain-last 3`,
	"status": `  # Where a table stands: last snapshot, last run, pending files, lag:
  icemerge status --table test_db.users --source s3://dms/raw_input/test_db/users
  # For alarms: the lag in seconds
  icemerge status --table test_db.users --source s3://dms/raw_input/test_db/users --json | jq '.tables[0].pending.lag_seconds'`,
	"bookmark": `  icemerge bookmark show --table test_db.users
  icemerge bookmark rewind --table test_db.users --to 2024-08-14T00:30:00Z
  icemerge bookmark reset --table test_db.users`,
	"bookmark show": `  icemerge bookmark show --table test_db.users --files
  icemerge bookmark show --table test_db.users --json | jq .quarantined`,
	"bookmark reset": `  # Apply every file again (rows already current stay unchanged):
  icemerge bookmark reset --table test_db.users`,
	"bookmark rewind": `  # Apply again the CDC files named after 00:30 UTC:
  icemerge bookmark rewind --table test_db.users --to 2024-08-14T00:30:00Z
  # The same in DMS's name form, counting what the next run processes:
  icemerge bookmark rewind --table test_db.users --to 20240814-003000000 --source ./raw_input/test_db/users`,
	"version": `  icemerge version
  icemerge --version`,
	"completion": `  # bash (add to ~/.bashrc):
  source <(icemerge completion bash)
  # zsh (add to ~/.zshrc):
  source <(icemerge completion zsh)
  # fish:
  icemerge completion fish > ~/.config/fish/completions/icemerge.fish`,
}

// completionCmd is `icemerge completion`.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

func (c *completionCmd) Run(a *app, kctx *kong.Context) error {
	return clikit.WriteCompletion(a.stdout, c.Shell, kctx.Model.Node)
}
