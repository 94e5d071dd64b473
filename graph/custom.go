package graph

// Hand-written resolvers for schema/custom.graphql. The generator never
// writes this file; it is an example of extending the generated API.

import (
	"context"
	"fmt"

	"kiln/ent"
	"kiln/ent/post"
	"kiln/ent/schema/enum"
	"kiln/runtime/validate"
)

// TrendingPosts returns public posts by score, newest first among equals.
func (r *queryResolver) TrendingPosts(ctx context.Context, limit *int) ([]*ent.Post, error) {
	n := 10
	if limit != nil {
		n = *limit
	}
	if n < 1 || n > 100 {
		// validate.Error becomes a BAD_USER_INPUT error naming the argument.
		return nil, &validate.Error{Field: "limit", Rule: fmt.Sprintf("must be between 1 and 100, got %d", n)}
	}
	q, err := r.Client.Post.Query().
		Where(post.VisibilityEQ(enum.VisibilityPublic)).
		Order(ent.Desc(post.FieldScore), ent.Desc(post.FieldCreatedAt)).
		Limit(n).
		CollectFields(ctx)
	if err != nil {
		return nil, err
	}
	return q.All(ctx)
}
