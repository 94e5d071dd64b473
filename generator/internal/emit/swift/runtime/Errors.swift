import Foundation

/// Every failure of a Kiln call: switch on the case, never on the message.
public enum KilnError: Error, Equatable, Sendable {
    /// The record does not exist, or the viewer may not see it (NOT_FOUND).
    case notFound(message: String)
    /// The record changed since the version sent, or a unique value is taken (CONFLICT).
    case conflict(message: String)
    /// The input is invalid; `field` names the offending input field when the server says (BAD_USER_INPUT).
    /// `reason` is the server's extensions.reason when it gives one, e.g. for files
    /// UNSUPPORTED_CONTENT_TYPE, TOO_LARGE, BAD_CHECKSUM, UPLOAD_MISMATCH, NOT_UPLOADED, UPLOAD_EXPIRED.
    case validation(field: String?, message: String, reason: String? = nil)
    /// No valid session: sign in again (UNAUTHENTICATED, HTTP 401).
    case unauthenticated(message: String)
    /// The account has a second factor: the sign-in needs a code too. Pass `mfaToken` and the code of the
    /// user's authenticator app (or a recovery code) to `Auth.completeMfaSignIn` (MFA_REQUIRED).
    case mfaRequired(mfaToken: String, message: String)
    /// Signed in, but the rules do not allow this (FORBIDDEN).
    case forbidden(message: String)
    /// Too many requests; retry after `retryAfter` seconds when known (RATE_LIMITED, HTTP 429).
    case rateLimited(retryAfter: Int?, message: String)
    /// The server could not be reached or the connection broke.
    case network(message: String)
    /// Any other server error, with its code (INTERNAL_SERVER_ERROR, UNAVAILABLE, ...).
    /// A subscription socket the server closed for good has code
    /// `WEBSOCKET_<close code>` (e.g. WEBSOCKET_4400), one whose upgrade it
    /// refused `HTTP_<status>`.
    case server(code: String?, message: String)
    /// The response did not have the expected shape (for subscriptions: the
    /// server broke the graphql-transport-ws protocol).
    case decoding(message: String)
    /// This cannot work here, and retrying will not help: e.g. subscriptions
    /// where the platform has no WebSockets (plug in a `KilnWebSocketFactory`
    /// with `KilnConfig.webSocket`) or the URL's scheme is not http(s)/ws(s).
    case unsupported(message: String)
    /// The client was closed (`KilnClient.close()`): a call made after, or
    /// one in flight on the client's own URLSession when it closed. Not a
    /// server error: make a new client to go on.
    case closed(message: String)

    /// Maps one GraphQL error object to its case.
    public static func from(graphQLError error: JSONValue, retryAfter: Int? = nil) -> KilnError {
        let message = error["message"]?.stringValue ?? "unknown error"
        let ext = error["extensions"]
        let field = ext?["field"]?.stringValue
        let code = ext?["code"]?.stringValue
        switch code ?? "" {
        case "NOT_FOUND": return .notFound(message: message)
        case "CONFLICT": return .conflict(message: message)
        case "BAD_USER_INPUT", "VALIDATION", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED":
            return .validation(field: field, message: message, reason: ext?["reason"]?.stringValue)
        case "UNAUTHENTICATED": return .unauthenticated(message: message)
        case "FORBIDDEN": return .forbidden(message: message)
        case "MFA_REQUIRED": return .mfaRequired(mfaToken: ext?["mfaToken"]?.stringValue ?? "", message: message)
        case "RATE_LIMITED": return .rateLimited(retryAfter: ext?["retryAfter"]?.intValue ?? retryAfter, message: message)
        default: return .server(code: code, message: message)
        }
    }
}
