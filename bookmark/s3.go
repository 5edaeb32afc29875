package bookmark

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3API is the part of the S3 client the bookmark uses.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// s3Objects keeps objects in S3. Compare-and-swap uses conditional writes:
// If-None-Match: * to create, If-Match: <ETag> to replace, so two writers
// can never overwrite each other. A version is the object's ETag.
type s3Objects struct {
	client S3API
	bucket string
	prefix string
}

// NewS3Store keeps the bookmark of table ns.name under s3://bucket/prefix.
func NewS3Store(client S3API, bucket, prefix, table string) *Bookmarks {
	return &Bookmarks{obj: s3Objects{client: client, bucket: bucket, prefix: prefix}, table: table}
}

func (o s3Objects) key(name string) (string, error) { return keyInside(o.prefix, name) }

func (o s3Objects) where(name string) string {
	return "s3://" + o.bucket + "/" + path.Join(o.prefix, name)
}

func statusOf(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func (o s3Objects) get(ctx context.Context, name string) ([]byte, Version, error) {
	key, err := o.key(name)
	if err != nil {
		return nil, "", err
	}
	out, err := o.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &o.bucket, Key: aws.String(key)})
	if err != nil {
		var api smithy.APIError
		if statusOf(err) == http.StatusNotFound || (errors.As(err, &api) && api.ErrorCode() == "NoSuchKey") {
			return nil, "", errNotFound
		}
		return nil, "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", err
	}
	return b, Version(aws.ToString(out.ETag)), nil
}

func (o s3Objects) put(ctx context.Context, name string, data []byte, prev Version) (Version, error) {
	key, err := o.key(name)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{Bucket: &o.bucket, Key: aws.String(key), Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data)))}
	if prev == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(string(prev))
	}
	out, err := o.client.PutObject(ctx, in)
	if err != nil {
		// 412: the precondition failed. 409: a concurrent conditional write
		// to the same key is in flight. 404: If-Match on a missing key.
		switch statusOf(err) {
		case http.StatusPreconditionFailed, http.StatusConflict, http.StatusNotFound:
			return "", ErrConflict
		}
		return "", err
	}
	return Version(aws.ToString(out.ETag)), nil
}
