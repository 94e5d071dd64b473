package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"kiln/runtime/store"
	"kiln/runtime/store/file"
)

// memStore is a Store in memory, for these tests.
type memStore struct {
	mu   sync.Mutex
	objs map[string]StoredObject
	data map[string][]byte
}

func newMem() *memStore {
	return &memStore{objs: map[string]StoredObject{}, data: map[string][]byte{}}
}

func (m *memStore) PresignPut(_ context.Context, key string, size int64, ct, sha string, exp time.Time) (UploadTarget, error) {
	return UploadTarget{URL: "mem://" + key, Method: "PUT", Headers: map[string]string{"Content-Type": ct}, ExpiresAt: exp}, nil
}

func (m *memStore) PresignGet(_ context.Context, key string, _ time.Time) (string, error) {
	return "mem://" + key, nil
}

func (m *memStore) Put(_ context.Context, key string, r io.Reader, size int64, ct string) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = StoredObject{Key: key, Size: int64(len(b)), ContentType: ct, ModTime: time.Now()}
	m.data[key] = b
	return nil
}

func (m *memStore) Copy(_ context.Context, src, dst string) (StoredObject, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[src]
	if !ok {
		return StoredObject{}, fmt.Errorf("%s: %w", src, ErrObjectNotFound)
	}
	o.Key = dst
	m.objs[dst] = o
	m.data[dst] = bytes.Clone(m.data[src])
	return o, nil // no SHA256: the service hashes the copy
}

func (m *memStore) Open(_ context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[key]
	if !ok {
		return nil, ErrObjectNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) List(_ context.Context, prefix string, fn func(StoredObject) error) error {
	m.mu.Lock()
	var objs []StoredObject
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			objs = append(objs, o)
		}
	}
	m.mu.Unlock()
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	for _, o := range objs {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	delete(m.data, key)
	return nil
}

func (m *memStore) get(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[key]
}

func newService(t *testing.T) (*Service, *memStore) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/files.db?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	client := store.NewClient(store.Driver(entsql.OpenDB(dialect.SQLite, db)))
	t.Cleanup(func() { client.Close() })
	if err := client.Schema.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	mem := newMem()
	return &Service{Blobs: mem, DB: client, Limits: Limits{PendingQuota: 1000},
		Schema: Schema{Fields: map[string]Field{
			"Profile.avatar":   {Input: "avatarID", Accept: []string{"image/*"}, MaxSize: 100},
			"Post.attachments": {Input: "attachmentIDs", Accept: []string{"image/png", "video/mp4"}},
		}}}, mem
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestUploadFlow: a ticket, the bytes, completion into an immutable
// content-addressed key with a server-computed sha256, and a URL.
func TestUploadFlow(t *testing.T) {
	s, mem := newService(t)
	user := &access.Viewer{ID: uuid.New()}
	ctx := access.With(context.Background(), user)
	body := []byte("png bytes")
	tk, err := s.CreateUpload(ctx, UploadInput{Filename: "a.png", ContentType: "image/png", Size: len(body)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.DB.File.Get(ctx, tk.FileID)
	if err != nil || f.Status != file.StatusPending || !strings.HasPrefix(f.Key, "uploads/") {
		t.Fatalf("ticket file: %+v %v", f, err)
	}
	if _, err := s.CompleteUpload(ctx, tk.FileID); err == nil {
		t.Fatal("completed before anything was uploaded")
	}
	mem.Put(ctx, f.Key, bytes.NewReader(body), int64(len(body)), "image/png")
	done, err := s.CompleteUpload(ctx, tk.FileID)
	if err != nil || done.Status != file.StatusReady || done.Sha256 == nil || *done.Sha256 != hexSHA(body) {
		t.Fatalf("complete: %+v %v", done, err)
	}
	// The upload URL writes the staging key; what is served never changes.
	mem.Put(ctx, f.Key, strings.NewReader("evil bytes"), 10, "image/png")
	u, err := s.URL(ctx, s.DB, done, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mem.get(strings.TrimPrefix(u, "mem://")); !bytes.Equal(got, body) {
		t.Fatalf("served %q, want %q", got, body)
	}
	// Someone else's file is not found.
	other := access.With(context.Background(), &access.Viewer{ID: uuid.New()})
	var nf *apierror.NotFoundError
	if _, err := s.CompleteUpload(other, tk.FileID); !errors.As(err, &nf) {
		t.Fatalf("another user completing: %v", err)
	}
}

func TestUploadChecks(t *testing.T) {
	s, _ := newService(t)
	ctx := access.With(context.Background(), &access.Viewer{ID: uuid.New()})
	bad := "zz"
	for _, c := range []struct {
		in     UploadInput
		reason string
	}{
		{UploadInput{Filename: "a/b.png", ContentType: "image/png", Size: 1}, ReasonFilename},
		{UploadInput{Filename: "x.exe", ContentType: "application/x-msdownload", Size: 1}, ReasonContentType},
		{UploadInput{Filename: "a.png", ContentType: "image/png", Size: 0}, ReasonSize},
		{UploadInput{Filename: "a.gif", ContentType: "image/gif", Size: 101}, ReasonTooLarge}, // only the avatar takes gif, up to 100
		{UploadInput{Filename: "a.png", ContentType: "image/png", Size: 1, Sha256: &bad}, ReasonChecksum},
	} {
		_, err := s.CreateUpload(ctx, c.in)
		var fe *Error
		if !errors.As(err, &fe) || fe.Reason != c.reason || fe.Code() != apierror.CodeBadUserInput {
			t.Errorf("%+v: want %s, got %v", c.in, c.reason, err)
		}
	}
	if _, err := s.CreateUpload(context.Background(), UploadInput{Filename: "a.png", ContentType: "image/png", Size: 1}); err == nil {
		t.Error("a visitor got a ticket")
	}
}

func TestQuota(t *testing.T) {
	s, _ := newService(t)
	ctx := access.With(context.Background(), &access.Viewer{ID: uuid.New()})
	for i := 0; i < 2; i++ {
		if _, err := s.CreateUpload(ctx, UploadInput{Filename: "v.mp4", ContentType: "video/mp4", Size: 400}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.CreateUpload(ctx, UploadInput{Filename: "v.mp4", ContentType: "video/mp4", Size: 400})
	var qe *QuotaError
	if !errors.As(err, &qe) || qe.Quota != "pending" || qe.Used != 800 || qe.Limit != 1000 {
		t.Fatalf("third upload: %v", err)
	}
	if n, _ := s.DB.File.Query().Count(ctx); n != 2 {
		t.Fatalf("the refused upload left a row: %d files", n)
	}
}

// TestSweep: an unreferenced file idle past the upload TTL goes, with its
// bytes; a referenced one stays.
func TestSweep(t *testing.T) {
	s, mem := newService(t)
	s.Limits.UploadTTL = time.Minute
	ctx := access.With(context.Background(), &access.Viewer{ID: uuid.New()})
	keep, gone := []byte("keep"), []byte("gone")
	var ids []uuid.UUID
	for _, b := range [][]byte{keep, gone} {
		tk, err := s.CreateUpload(ctx, UploadInput{Filename: "a.png", ContentType: "image/png", Size: len(b)})
		if err != nil {
			t.Fatal(err)
		}
		f, _ := s.DB.File.Get(ctx, tk.FileID)
		mem.Put(ctx, f.Key, bytes.NewReader(b), int64(len(b)), "image/png")
		if _, err := s.CompleteUpload(ctx, tk.FileID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.FileID)
	}
	s.Schema.Referenced = func(sel *entsql.Selector) { sel.Where(entsql.EQ(sel.C(file.FieldID), ids[0])) }
	n, err := s.Sweep(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if _, err := s.DB.File.Get(ctx, ids[1]); !store.IsNotFound(err) {
		t.Fatalf("the unreferenced file is still there: %v", err)
	}
	if f, err := s.DB.File.Get(ctx, ids[0]); err != nil || f.Status != file.StatusReady {
		t.Fatalf("the referenced file: %v", err)
	}
	for k := range mem.data {
		if strings.Contains(k, ids[1].String()) {
			t.Errorf("bytes of the removed file remain at %s", k)
		}
	}
}

// TestListLoader: concurrent loads through one client are batched into
// fetches, and each load gets its own record's files.
func TestListLoader(t *testing.T) {
	var mu sync.Mutex
	fetches := 0
	l := &ListLoader[string, int]{Fetch: func(_ context.Context, _ string, ids []uuid.UUID) (map[uuid.UUID][]int, error) {
		mu.Lock()
		fetches++
		mu.Unlock()
		out := map[uuid.UUID][]int{}
		for _, id := range ids {
			out[id] = []int{int(id[0])}
		}
		return out, nil
	}}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ { // a full batch runs at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uuid.New()
			if got, err := l.Load(context.Background(), "c", id); err != nil || len(got) != 1 || got[0] != int(id[0]) {
				t.Errorf("load: %v %v", got, err)
			}
		}()
	}
	wg.Wait()
	if fetches < 1 || fetches > 100 {
		t.Errorf("%d fetches for 100 loads", fetches)
	}
}
