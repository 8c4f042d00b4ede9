package redfishsim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
)

// doc is one Redfish JSON document.
type doc = map[string]any

// ref is a Redfish link: {"@odata.id": path}.
func ref(path string) doc { return doc{"@odata.id": path} }

func refs(paths ...string) []doc {
	out := make([]doc, len(paths))
	for i, p := range paths {
		out[i] = ref(p)
	}
	return out
}

// collection renders a resource collection in the mockups' shape.
func collection(path, typ, name string, members []string) doc {
	return doc{
		"@odata.id":           path,
		"@odata.type":         "#" + typ + "." + typ,
		"Name":                name,
		"Members@odata.count": len(members),
		"Members":             refs(members...),
	}
}

func statusOK() doc { return doc{"State": "Enabled", "Health": "OK"} }

// etagOf hashes the writable part of a resource: the ETag changes when a
// client's PATCH or DELETE could conflict, not when PowerState moves.
func etagOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `W/"0"`
	}
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf(`W/"%016x"`, h.Sum64())
}

// writeJSON writes a document with the headers a Redfish service sends.
func writeJSON(w http.ResponseWriter, status int, d doc, etag string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("OData-Version", "4.0")
	h.Set("Cache-Control", "no-cache")
	if etag != "" {
		h.Set("ETag", etag)
		d["@odata.etag"] = etag
	}
	b, err := json.Marshal(d)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"Base.1.16.InternalError","message":"cannot encode response"}}`)
	}
	w.WriteHeader(status)
	w.Write(b)
}

// Redfish Base registry message IDs used in error bodies.
const (
	msgGeneral            = "Base.1.16.GeneralError"
	msgInternal           = "Base.1.16.InternalError"
	msgNoValidSession     = "Base.1.16.NoValidSession"
	msgResourceMissing    = "Base.1.16.ResourceMissingAtURI"
	msgSessionLimit       = "Base.1.16.SessionLimitExceeded"
	msgPreconditionFailed = "Base.1.16.PreconditionFailed"
	msgPreconditionReq    = "Base.1.16.PreconditionRequired"
	msgPropertyUnknown    = "Base.1.16.PropertyUnknown"
	msgPropertyValue      = "Base.1.16.PropertyValueNotInList"
	msgPropertyType       = "Base.1.16.PropertyValueTypeError"
	msgPropertyMissing    = "Base.1.16.PropertyMissing"
	msgActionParamMissing = "Base.1.16.ActionParameterMissing"
	msgActionParamValue   = "Base.1.16.ActionParameterValueNotInList"
	msgActionParamFormat  = "Base.1.16.ActionParameterValueFormatError"
	msgMalformedJSON      = "Base.1.16.MalformedJSON"
	msgOperationNotAllow  = "Base.1.16.OperationNotAllowed"
	msgActionNotSupported = "Base.1.16.ActionNotSupported"
	msgResourceInUse      = "Base.1.16.ResourceInUse"
	msgUnauthorizedURI    = "Base.1.16.ResourceAtUriUnauthorized"
	msgServiceUnavailable = "Base.1.16.ServiceTemporarilyUnavailable"
	msgNotImplemented     = "Base.1.16.ActionNotSupported"
)

// writeError writes a Redfish error body: the shape every BMC uses and
// clients (gofish included) parse.
func writeError(w http.ResponseWriter, status int, msgID, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	writeJSON(w, status, doc{
		"error": doc{
			"code":    msgGeneral,
			"message": msg,
			"@Message.ExtendedInfo": []doc{{
				"@odata.type": "#Message.v1_2_0.Message",
				"MessageId":   msgID,
				"Message":     msg,
				"Severity":    "Critical",
				"Resolution":  "See the message.",
			}},
		},
	}, "")
}
