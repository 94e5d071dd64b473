package io.kiln.sdk

/**
 * Every failure of a Kiln call is one of these: match on the subclass, never
 * on the message. [code] is the server's extensions.code where there is one.
 */
sealed class KilnException(message: String, cause: Throwable? = null) : Exception(message, cause) {
    open val code: String? get() = null

    /** The record does not exist, or the viewer may not see it (NOT_FOUND). */
    class NotFound(message: String) : KilnException(message) { override val code get() = "NOT_FOUND" }

    /** The record changed since the version sent, or a unique value is taken (CONFLICT). */
    class Conflict(message: String) : KilnException(message) { override val code get() = "CONFLICT" }

    /**
     * The input is invalid; [field] names the offending input field when the server says (BAD_USER_INPUT).
     * [reason] is the server's extensions.reason when it gives one, e.g. for files
     * UNSUPPORTED_CONTENT_TYPE, TOO_LARGE, BAD_CHECKSUM, UPLOAD_MISMATCH, NOT_UPLOADED, UPLOAD_EXPIRED.
     */
    class Validation(val field: String?, message: String, val reason: String? = null) : KilnException(message) { override val code get() = "BAD_USER_INPUT" }

    /** No valid session: sign in again (UNAUTHENTICATED, HTTP 401). */
    class Unauthenticated(message: String) : KilnException(message) { override val code get() = "UNAUTHENTICATED" }

    /**
     * The account has a second factor: the sign-in needs a code too. Pass [mfaToken] and the code of the
     * user's authenticator app (or a recovery code) to Auth.completeMfaSignIn (MFA_REQUIRED).
     */
    class MfaRequired(val mfaToken: String, message: String) : KilnException(message) { override val code get() = "MFA_REQUIRED" }

    /** Signed in, but the rules do not allow this (FORBIDDEN). */
    class Forbidden(message: String) : KilnException(message) { override val code get() = "FORBIDDEN" }

    /** Too many requests; retry after [retryAfterSeconds] when known (RATE_LIMITED, HTTP 429). */
    class RateLimited(val retryAfterSeconds: Int?, message: String) : KilnException(message) { override val code get() = "RATE_LIMITED" }

    /** The server could not be reached or the connection broke. */
    class Network(message: String, cause: Throwable? = null) : KilnException(message, cause)

    /** Any other server error, with its code (INTERNAL_SERVER_ERROR, UNAVAILABLE, ...). */
    class Server(override val code: String?, message: String) : KilnException(message)

    /** The response did not have the expected shape. */
    class Decoding(message: String, cause: Throwable? = null) : KilnException(message, cause)

    /**
     * The [KilnClient] was closed ([KilnClient.close]): a call made after, or
     * one in flight on the client's own OkHttpClient when it closed. Not a
     * server error: make a new client to go on.
     */
    class Closed(message: String) : KilnException(message)
}
