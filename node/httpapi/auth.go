package httpapi

import (
	"errors"
	"net/http"

	"github.com/buytracker/buytracker/node/clientauth"
)

// requireRole answers 401 or 403 before h when the route's role needs a
// token and the request does not carry one that has it.
func (s *Server) requireRole(route string, role clientauth.Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.opts.Auth.Authorize(r.Header.Get("Authorization"), role); err != nil {
			aerr := authError(err, route, role)
			if aerr.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="buytracker"`)
			}
			writeError(w, aerr)
			return
		}
		h(w, r)
	}
}

func authError(err error, route string, role clientauth.Role) *apiError {
	switch {
	case errors.Is(err, clientauth.ErrNoTokens):
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: route + " needs a token with the " + string(role) + " role and this node has no client tokens: start it with --client-auth-file"}
	case errors.Is(err, clientauth.ErrMissingRole):
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: route + " needs a token with the " + string(role) + " role; this token does not have it"}
	default:
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized",
			message: route + " needs a valid bearer token (Authorization: Bearer <token>) with the " + string(role) + " role"}
	}
}
