package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/buytracker/buytracker/node/ledger"
)

// maxBodyBytes is the largest POST /buy body accepted.
const maxBodyBytes = 64 << 10

// maxAmountCents is the ledger's bound, which the decoders parse against.
const maxAmountCents = ledger.MaxAmountCents

// buyRequest is the POST /buy body. Fields stay raw so that each rule can
// be checked exactly (integers are not floats, amounts keep their digits).
// buyFields lists the same names.
type buyRequest struct {
	UserID        json.RawMessage `json:"user_id"`
	PromotionID   json.RawMessage `json:"promotion_id"`
	ProductID     json.RawMessage `json:"product_id"`
	ProductAmount json.RawMessage `json:"product_amount"`
	IPAddress     json.RawMessage `json:"ip_address"`
	Timestamp     json.RawMessage `json:"timestamp"`
}

// buyFields are buyRequest's JSON names, spelled exactly.
var buyFields = [...]string{"user_id", "promotion_id", "product_id", "product_amount", "ip_address", "timestamp"}

// readBuyBody checks the content type and reads at most maxBodyBytes. A
// body of known length goes into buf when it fits (buf's capacity).
func readBuyBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || (mediaType != "application/json" && !strings.HasSuffix(mediaType, "+json")) {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
				message: "the body must be JSON (Content-Type: application/json)"}
		}
	}
	if n := r.ContentLength; n >= 0 && n <= int64(cap(buf)) && n <= maxBodyBytes {
		// net/http ends a body of known length at exactly n bytes.
		body := buf[:n]
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, badRequest("unreadable_body", "", "could not read the body: "+err.Error())
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
				message: fmt.Sprintf("the body must be at most %d bytes", maxBodyBytes)}
		}
		return nil, badRequest("unreadable_body", "", "could not read the body: "+err.Error())
	}
	return body, nil
}

// decodeBuy validates a POST /buy body and returns the purchase it asks for.
// remoteIP is used when the body names no ip_address; key is the
// Idempotency-Key header, already checked. Bodies of the usual plain shape
// take a fast path (decode_fast.go); everything else, and every rejection,
// goes through the strict decoder, so errors are always its errors. Both
// end with ledger.ValidatePurchase, the rules every recorded purchase meets.
func decodeBuy(body []byte, remoteIP, key string) (ledger.Purchase, *apiError) {
	// A link-local peer's address carries its zone, which a stored address
	// must not.
	if i := strings.IndexByte(remoteIP, '%'); i >= 0 {
		remoteIP = remoteIP[:i]
	}
	if p, ok := decodeBuyFast(body, remoteIP, key); ok {
		return p, nil
	}
	return decodeBuyStrict(body, remoteIP, key)
}

// decodeBuyStrict is decodeBuy through encoding/json, for any body.
func decodeBuyStrict(body []byte, remoteIP, key string) (ledger.Purchase, *apiError) {
	var req buyRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return ledger.Purchase{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ledger.Purchase{}, badRequest("invalid_json", "", "the body must hold exactly one JSON object")
	}
	if aerr := checkFieldNames(body); aerr != nil {
		return ledger.Purchase{}, aerr
	}
	var p ledger.Purchase
	var aerr *apiError
	if p.UserID, aerr = positiveID("user_id", req.UserID); aerr != nil {
		return ledger.Purchase{}, aerr
	}
	if p.PromotionID, aerr = positiveID("promotion_id", req.PromotionID); aerr != nil {
		return ledger.Purchase{}, aerr
	}
	if p.ProductID, aerr = positiveID("product_id", req.ProductID); aerr != nil {
		return ledger.Purchase{}, aerr
	}
	if p.AmountCents, aerr = amount(req.ProductAmount); aerr != nil {
		return ledger.Purchase{}, aerr
	}
	givenIP, aerr := optionalString("ip_address", req.IPAddress)
	if aerr != nil {
		return ledger.Purchase{}, aerr
	}
	if givenIP != "" {
		if len(givenIP) > ledger.MaxIPLength {
			return ledger.Purchase{}, badRequest("invalid_ip_address", "ip_address", "ip_address must be at most 45 characters")
		}
		addr, err := netip.ParseAddr(givenIP)
		if err != nil || addr.Zone() != "" {
			return ledger.Purchase{}, badRequest("invalid_ip_address", "ip_address", "ip_address must be an IPv4 or IPv6 address")
		}
		p.IP = addr.String()
		givenIP = p.IP
	} else {
		p.IP = remoteIP
	}
	if p.ClientTimestamp, aerr = optionalString("timestamp", req.Timestamp); aerr != nil {
		return ledger.Purchase{}, aerr
	}
	p.IdempotencyKey = key
	if err := ledger.ValidatePurchase(&p); err != nil {
		return ledger.Purchase{}, invalidPurchase(err)
	}
	p.Fingerprint = fingerprint(&p, givenIP)
	return p, nil
}

// checkFieldNames refuses what encoding/json lets through: a field named
// twice (it keeps the last) and a name that differs from a field's only in
// case (it matches names case-insensitively), so {"user_id":1,"User_Id":5}
// would record user 5. body is one valid JSON object.
func checkFieldNames(body []byte) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return jsonError(err)
	}
	var seen [len(buyFields)]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		name, _ := tok.(string)
		i := slices.Index(buyFields[:], name)
		switch {
		case i < 0:
			return badRequest("unknown_field", name, fmt.Sprintf("unknown field %q (field names are case-sensitive)", name))
		case seen[i]:
			return badRequest("duplicate_field", name, fmt.Sprintf("field %q is given more than once", name))
		}
		seen[i] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

// invalidPurchase answers a purchase that ledger.ValidatePurchase refused,
// naming its field.
func invalidPurchase(err error) *apiError {
	var invalid *ledger.InvalidPurchaseError
	if !errors.As(err, &invalid) {
		return badRequest("invalid_purchase", "", "the purchase breaks the rules of POST /buy: "+err.Error())
	}
	code := "invalid_purchase"
	switch invalid.Field {
	case "user_id", "promotion_id", "product_id":
		code = "invalid_id"
	case "product_amount":
		code = "amount_out_of_range"
	case "ip_address":
		code = "invalid_ip_address"
	case "timestamp":
		code = "invalid_timestamp"
	case "Idempotency-Key":
		code = "invalid_idempotency_key"
	}
	return badRequest(code, invalid.Field, invalid.Field+" "+invalid.Reason)
}

func jsonError(err error) *apiError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return badRequest("invalid_json", typeErr.Field, "the body must be a JSON object")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("invalid_json", "", "the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest("unknown_field", field, fmt.Sprintf("unknown field %q", field))
	default:
		return badRequest("invalid_json", "", "the body is not valid JSON: "+err.Error())
	}
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// positiveID parses a required JSON integer in 1 .. 2^63-1.
func positiveID(field string, raw json.RawMessage) (int64, *apiError) {
	if isNull(raw) {
		return 0, badRequest("missing_field", field, field+" is required")
	}
	s := string(raw)
	if strings.ContainsAny(s, ".eE\"") {
		return 0, badRequest("invalid_id", field, field+" must be an integer")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		var numErr *strconv.NumError
		if errors.As(err, &numErr) && numErr.Err == strconv.ErrRange {
			return 0, badRequest("invalid_id", field, field+" must be at most 9223372036854775807")
		}
		return 0, badRequest("invalid_id", field, field+" must be an integer")
	}
	if v < 1 {
		return 0, badRequest("invalid_id", field, field+" must be at least 1")
	}
	return v, nil
}

// amount parses product_amount, a JSON number or decimal string with at
// most two decimals, into cents.
func amount(raw json.RawMessage) (int64, *apiError) {
	const field = "product_amount"
	if isNull(raw) {
		return 0, badRequest("missing_field", field, field+" is required")
	}
	s := string(raw)
	if s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, badRequest("invalid_amount", field, field+" must be a number")
		}
	}
	cents, ok := parseCents(s)
	if !ok {
		return 0, badRequest("invalid_amount", field, field+" must be a decimal number with at most 2 decimals, such as 19.99")
	}
	if cents < 0 || cents > maxAmountCents {
		return 0, badRequest("amount_out_of_range", field, field+" must be between 0 and 99999999.99")
	}
	return cents, nil
}

// parseCents parses [-]digits[.d[d]] exactly, without floating point.
func parseCents(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 12 || (hasDot && (frac == "" || len(frac) > 2)) {
		return 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac, 10, 64)
		if len(frac) == 1 {
			f *= 10
		}
	}
	cents := w*100 + f
	if neg {
		cents = -cents
	}
	return cents, true
}

func optionalString(field string, raw json.RawMessage) (string, *apiError) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("invalid_"+field, field, field+" must be a string")
	}
	return s, nil
}

// fingerprint identifies what the client asked for (not the address it came
// from), so a retry through another node matches the original.
// Fingerprints are stored in the Raft log: the hashed text,
// "user|promotion|product|cents|ip|timestamp", must never change.
func fingerprint(p *ledger.Purchase, givenIP string) uint64 {
	var buf [128]byte
	b := strconv.AppendInt(buf[:0], p.UserID, 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, p.PromotionID, 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, p.ProductID, 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, p.AmountCents, 10)
	b = append(b, '|')
	b = append(b, givenIP...)
	b = append(b, '|')
	b = append(b, p.ClientTimestamp...)
	return fnv64a(b)
}

// fnv64a is hash/fnv's 64-bit FNV-1a, without its allocation.
func fnv64a(b []byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, c := range b {
		h ^= uint64(c)
		h *= prime
	}
	return h
}
