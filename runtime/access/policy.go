package access

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	stringadapter "github.com/casbin/casbin/v2/persist/string-adapter"
)

// model.conf is the Casbin access model: a role may do an action on an
// object (a type, or Type.field for field rules).
//
//go:embed model.conf
var casbinModel string

// Policy is the role part of an app's rules: which role may do which
// operation on which type or Type.field, a Casbin policy generated from the
// schema's role rules. It is safe for concurrent use.
type Policy struct{ e *casbin.Enforcer }

// NewPolicy loads a policy in Casbin's CSV form ("p, role, Type, op" lines);
// an empty one (a schema without role rules) allows nothing.
func NewPolicy(csv string) (*Policy, error) {
	if strings.TrimSpace(csv) == "" {
		return &Policy{}, nil
	}
	m, err := model.NewModelFromString(casbinModel)
	if err != nil {
		return nil, err
	}
	e, err := casbin.NewEnforcer(m, stringadapter.NewAdapter(csv))
	if err != nil {
		return nil, fmt.Errorf("access policy: %w", err)
	}
	return &Policy{e: e}, nil
}

// MustPolicy is NewPolicy for generated code, whose policy is known good.
func MustPolicy(csv string) *Policy {
	p, err := NewPolicy(csv)
	if err != nil {
		panic(err)
	}
	return p
}

// RoleAllows reports whether one of the viewer's roles that the rule names
// may do op on obj under the policy.
func (p *Policy) RoleAllows(v *Viewer, obj, op string, roles ...string) bool {
	if v == nil || p.e == nil {
		return false
	}
	for _, r := range v.Roles {
		if !slices.Contains(roles, r) {
			continue
		}
		if ok, err := p.e.Enforce(r, obj, op); err == nil && ok {
			return true
		}
	}
	return false
}
