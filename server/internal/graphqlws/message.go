package graphqlws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Message types of the graphql-transport-ws protocol.
const (
	msgConnectionInit = "connection_init"
	msgConnectionAck  = "connection_ack"
	msgPing           = "ping"
	msgPong           = "pong"
	msgSubscribe      = "subscribe"
	msgNext           = "next"
	msgError          = "error"
	msgComplete       = "complete"
)

// inbound is a validated message from a client.
type inbound struct {
	Type string
	ID   string
	// Payload is the object payload of connection_init, ping and pong (nil
	// when absent or null).
	Payload map[string]any
	// Subscribe is the payload of a subscribe message.
	Subscribe *subscribePayload
}

type subscribePayload struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
	Extensions    map[string]any `json:"extensions"`
}

// outbound is a message to a client.
type outbound struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Payload any    `json:"payload,omitempty"`
}

// protocolError is a message that breaks the protocol; its text is the close
// reason sent with 4400.
type protocolError struct{ reason string }

func (e *protocolError) Error() string { return e.reason }

func badMessage(format string, args ...any) error {
	return &protocolError{reason: fmt.Sprintf(format, args...)}
}

// parseMessage decodes and validates one client message the way the
// reference implementation (graphql-ws validateMessage) does.
func parseMessage(data []byte) (inbound, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return inbound{}, badMessage("Message is expected to be a JSON object")
	}
	rawType, ok := fields["type"]
	if !ok {
		return inbound{}, badMessage("Message is missing the 'type' property")
	}
	var msg inbound
	if jsonKind(rawType) != '"' || json.Unmarshal(rawType, &msg.Type) != nil {
		return inbound{}, badMessage("Message expects the 'type' property to be a string")
	}
	payload := fields["payload"]
	switch msg.Type {
	case msgConnectionInit, msgConnectionAck, msgPing, msgPong:
		if !nullish(payload) {
			if jsonKind(payload) != '{' {
				return inbound{}, badMessage("%q message expects the 'payload' property to be an object or nullish or missing", msg.Type)
			}
			if err := json.Unmarshal(payload, &msg.Payload); err != nil {
				return inbound{}, badMessage("%q message has an invalid payload", msg.Type)
			}
		}
	case msgSubscribe:
		id, err := requireID(msg.Type, fields["id"])
		if err != nil {
			return inbound{}, err
		}
		msg.ID = id
		sub, err := parseSubscribePayload(payload)
		if err != nil {
			return inbound{}, err
		}
		msg.Subscribe = sub
	case msgNext, msgError, msgComplete:
		id, err := requireID(msg.Type, fields["id"])
		if err != nil {
			return inbound{}, err
		}
		msg.ID = id
	default:
		return inbound{}, badMessage("Invalid message 'type' property %q", msg.Type)
	}
	return msg, nil
}

func requireID(typ string, raw json.RawMessage) (string, error) {
	var id string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &id) != nil || id == "" {
		return "", badMessage("%q message requires a non-empty 'id' property", typ)
	}
	return id, nil
}

func parseSubscribePayload(raw json.RawMessage) (*subscribePayload, error) {
	if jsonKind(raw) != '{' {
		return nil, badMessage("\"subscribe\" message expects the 'payload' property to be an object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, badMessage("\"subscribe\" message has an invalid payload")
	}
	if jsonKind(fields["query"]) != '"' {
		return nil, badMessage("\"subscribe\" message payload expects the 'query' property to be a string")
	}
	if v := fields["operationName"]; !nullish(v) && jsonKind(v) != '"' {
		return nil, badMessage("\"subscribe\" message payload expects the 'operationName' property to be a string or nullish or missing")
	}
	for _, name := range []string{"variables", "extensions"} {
		if v := fields[name]; !nullish(v) && jsonKind(v) != '{' {
			return nil, badMessage("\"subscribe\" message payload expects the '%s' property to be an object or nullish or missing", name)
		}
	}
	var p subscribePayload
	dec := json.NewDecoder(bytes.NewReader(raw))
	// Numbers stay json.Number so that gqlgen coerces Int and Float
	// variables exactly, as its HTTP transports do.
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return nil, badMessage("\"subscribe\" message has an invalid payload")
	}
	return &p, nil
}

// jsonKind returns the first byte of a JSON value: '{', '[', '"', 'n', 't',
// 'f', a digit or '-'; 0 for an absent value.
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func nullish(raw json.RawMessage) bool {
	k := jsonKind(raw)
	return k == 0 || k == 'n'
}

// closeReason trims a close reason to the 123 bytes that a close frame can
// carry, on a rune boundary.
func closeReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
