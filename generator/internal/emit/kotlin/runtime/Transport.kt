package io.kiln.sdk

import java.io.IOException
import java.time.Duration
import java.time.Instant
import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.delay
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.intOrNull
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.put
import okhttp3.MediaType.Companion.toMediaType
import okhttp3.MultipartBody
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.RequestBody.Companion.toRequestBody

/**
 * How to reach a Kiln server.
 *
 * @property url the GraphQL endpoint, e.g. `https://api.example.com/graphql`
 *   (subscriptions use the same path over ws:// or wss://).
 * @property sessionStore where the session lives between launches: loaded once
 *   when the client is constructed, saved on every change. The default keeps it
 *   in memory; [FileSessionStore] keeps it in a file (JVM), and apps implement
 *   [SessionStore] over EncryptedSharedPreferences or the like.
 * @property httpClient the OkHttpClient for HTTP and WebSockets. Null (the
 *   default): the client creates its own, and [KilnClient.close] shuts it down
 *   (dispatcher threads, connection pool). One you pass is yours: close() only
 *   closes the WebSockets the SDK opened on it and leaves the client running.
 * @property refreshBefore how long before expiry the access token is refreshed.
 */
data class KilnConfig(
    val url: String,
    val sessionStore: SessionStore = InMemorySessionStore(),
    val httpClient: OkHttpClient? = null,
    val refreshBefore: Duration = Duration.ofSeconds(60),
    /** Extra headers on every request (e.g. an admin secret in server-side tools). */
    val headers: Map<String, String> = emptyMap(),
    /**
     * Send custom operations by their sha256 only (automatic persisted
     * queries; the text follows when the server asks). Needed with
     * KILN_OPERATIONS=allowlist servers only for smaller requests; model
     * calls always send their text.
     */
    val persistedQueries: Boolean = false,
)

/**
 * Sends GraphQL requests with the session's access token, refreshing it as
 * needed. It holds the session in memory: loaded from [KilnConfig.sessionStore]
 * when constructed, written through to it on every change.
 */
class KilnTransport internal constructor(val config: KilnConfig) {
    /** The OkHttpClient calls go through: [KilnConfig.httpClient], or the one this transport created. */
    val httpClient: OkHttpClient = config.httpClient ?: OkHttpClient()
    private val ownsHttpClient = config.httpClient == null
    private val refreshLock = Mutex()
    private val sessionLock = Any()
    // A store that cannot be read counts as holding no session.
    @Volatile private var current: Session? = try { config.sessionStore.load() } catch (e: Exception) { null }
    private val closed = AtomicBoolean(false)
    /** Completed by [close]: what waits (subscription backoff) wakes up. */
    internal val closing = CompletableDeferred<Unit>()
    /** Calls in flight that replace the session (changePassword, linkAccount). */
    private val replacing = java.util.concurrent.atomic.AtomicInteger()
    private val jsonType = "application/json".toMediaType()

    /** The current session (in memory), or null when signed out. */
    val session: Session? get() = current

    /** True once [KilnClient.close] ran: every call then throws [KilnException.Closed]. */
    val isClosed: Boolean get() = closed.get()

    /** Throws [KilnException.Closed] after [close]. */
    internal fun checkOpen() {
        if (closed.get()) throw KilnException.Closed("this KilnClient is closed")
    }

    /** Keeps [session] in memory and saves it to the store (off the caller's thread). */
    internal suspend fun keep(session: Session) = withContext(NonCancellable + Dispatchers.IO) {
        synchronized(sessionLock) {
            current = session
            config.sessionStore.save(session)
        }
    }

    /** Forgets the session, in memory and in the store. */
    internal suspend fun forget() = withContext(NonCancellable + Dispatchers.IO) {
        synchronized(sessionLock) {
            current = null
            config.sessionStore.clear()
        }
    }

    /** Marks the transport closed; false when it was already. */
    internal fun markClosed(): Boolean {
        if (!closed.compareAndSet(false, true)) return false
        closing.complete(Unit)
        return true
    }

    /**
     * Shuts down the OkHttpClient this transport created (none passed in
     * [KilnConfig.httpClient]): cancels its calls, stops its dispatcher's
     * threads, evicts its pooled connections, closes its cache.
     */
    internal fun shutdownHttpClient() {
        if (!ownsHttpClient) return
        httpClient.dispatcher.cancelAll()
        httpClient.dispatcher.executorService.shutdown()
        httpClient.connectionPool.evictAll()
        try {
            httpClient.cache?.close()
        } catch (e: IOException) {
            // Nothing to keep: the client is gone.
        }
    }

    /** The WebSocket URL of the endpoint. */
    val webSocketUrl: String = config.url.replaceFirst(Regex("^http"), "ws")

    /** Runs an operation and returns its data; authenticated calls refresh and retry once on UNAUTHENTICATED. */
    suspend fun execute(document: String, variables: JsonObject = JsonObject(emptyMap()), authenticated: Boolean = true, hash: String? = null): JsonObject {
        checkOpen()
        val token = if (authenticated) accessToken() else null
        return try {
            sendPersisted(document, variables, token, hash)
        } catch (e: KilnException.Unauthenticated) {
            if (token == null) throw e
            val fresh = refresh(stale = token) ?: throw e
            sendPersisted(document, variables, fresh, hash)
        }
    }

    /**
     * Runs [document] with one file as its variable `file`, in a GraphQL
     * multipart request; refreshes and retries once on UNAUTHENTICATED.
     */
    suspend fun executeUpload(document: String, filename: String, body: RequestBody): JsonObject {
        checkOpen()
        val variables = buildJsonObject { put("file", JsonNull) }
        val token = accessToken()
        return try {
            send(document, variables, token, file = filename to body)
        } catch (e: KilnException.Unauthenticated) {
            if (token == null) throw e
            val fresh = refresh(stale = token) ?: throw e
            send(document, variables, fresh, file = filename to body)
        }
    }

    /** With [KilnConfig.persistedQueries] and a hash: the hash alone first, the text too when the server does not know it. */
    private suspend fun sendPersisted(document: String, variables: JsonObject, token: String?, hash: String?): JsonObject {
        if (hash == null || !config.persistedQueries) return send(document, variables, token)
        return try {
            send(null, variables, token, hash)
        } catch (e: KilnException.Server) {
            if (e.code != "PERSISTED_QUERY_NOT_FOUND" && e.message?.contains("PersistedQueryNotFound") != true) throw e
            send(document, variables, token, hash)
        }
    }

    /** A valid access token for the current session (refreshed if it expires soon), or null when signed out. */
    suspend fun accessToken(): String? {
        val s = current ?: return null
        if (Instant.now().plus(config.refreshBefore).isBefore(s.expiresAt)) return s.accessToken
        return refresh(stale = s.accessToken)
    }

    /**
     * Exchanges the refresh token for a new session unless another caller
     * already did since [stale] was read. Returns null (and clears the
     * session) when the session cannot be refreshed.
     */
    suspend fun refresh(stale: String?): String? = refreshLock.withLock {
        val current = this.current ?: return@withLock null
        if (stale != null && current.accessToken != stale && Instant.now().plus(config.refreshBefore).isBefore(current.expiresAt)) {
            return@withLock current.accessToken
        }
        try {
            val data = send(REFRESH_DOCUMENT, buildJsonObject { put("refreshToken", current.refreshToken) }, null)
            val session = decodeField(data, "refreshSession", Session.serializer())
            keep(session)
            session.accessToken
        } catch (e: KilnException.Network) {
            throw e
        } catch (e: KilnException.Closed) {
            throw e
        } catch (e: KilnException) {
            // A call replacing the session (a password change ends the old
            // one) may be answering right now: its session wins.
            withTimeoutOrNull(10_000) { while (replacing.get() > 0) delay(20) }
            val now = this.current
            if (now != null && now.accessToken != current.accessToken) return@withLock now.accessToken
            forget()
            null
        }
    }

    /** Runs [block], a call whose answer replaces the session, so that a refresh failing meanwhile waits for it. */
    internal suspend fun <T> replacingSession(block: suspend () -> T): T {
        replacing.incrementAndGet()
        try {
            return block()
        } finally {
            replacing.decrementAndGet()
        }
    }

    internal suspend fun send(document: String?, variables: JsonObject, token: String?, hash: String? = null, file: Pair<String, RequestBody>? = null): JsonObject {
        val json = buildJsonObject {
            if (document != null) put("query", document)
            put("variables", variables)
            if (hash != null) {
                put("extensions", buildJsonObject {
                    put("persistedQuery", buildJsonObject { put("version", 1); put("sha256Hash", hash) })
                })
            }
        }.toString()
        // A file goes as part "0" of a multipart request (GraphQL multipart request spec).
        val body = if (file == null) json.toRequestBody(jsonType) else MultipartBody.Builder().setType(MultipartBody.FORM)
            .addFormDataPart("operations", json)
            .addFormDataPart("map", """{"0":["variables.file"]}""")
            .addFormDataPart("0", file.first, file.second)
            .build()
        val req = Request.Builder().url(config.url).post(body).header("Accept", "application/json")
        for ((k, v) in config.headers) req.header(k, v)
        if (token != null) req.header("Authorization", "Bearer $token")
        val (status, text, retryAfter) = withContext(Dispatchers.IO) {
            try {
                httpClient.newCall(req.build()).execute().use { r ->
                    Triple(r.code, r.body?.string() ?: "", r.header("Retry-After"))
                }
            } catch (e: IOException) {
                checkOpen() // closed meanwhile: say so rather than "network"
                throw KilnException.Network("request to ${config.url} failed: ${e.message}", e)
            }
        }
        return parseResponse(status, text, retryAfter?.toIntOrNull())
    }

    companion object {
        internal const val REFRESH_DOCUMENT = "{{doc refreshSession}}"

        internal fun parseResponse(status: Int, text: String, retryAfter: Int?): JsonObject {
            val obj = try {
                KilnJson.parseToJsonElement(text).jsonObject
            } catch (e: Exception) {
                null
            }
            val errors = obj?.get("errors")
            if (errors is JsonArray && errors.isNotEmpty()) throw errorFrom(errors[0].jsonObject, retryAfter)
            when {
                status == 401 -> throw KilnException.Unauthenticated(text.ifBlank { "unauthenticated" })
                status == 429 -> throw KilnException.RateLimited(retryAfter, text.ifBlank { "rate limited" })
                status >= 400 && obj == null -> throw KilnException.Server("HTTP_$status", text.ifBlank { "HTTP $status" })
                obj == null -> throw KilnException.Decoding("response is not JSON: ${text.take(200)}")
            }
            val data = obj!!["data"]
            if (data == null || data is JsonNull) throw KilnException.Decoding("response has no data")
            return data.jsonObject
        }

        /** Maps one GraphQL error to its typed exception. */
        fun errorFrom(error: JsonObject, retryAfter: Int? = null): KilnException {
            val message = (error["message"] as? JsonPrimitive)?.content ?: "unknown error"
            val ext = error["extensions"] as? JsonObject
            val code = (ext?.get("code") as? JsonPrimitive)?.content
            val field = (ext?.get("field") as? JsonPrimitive)?.content
            return when (code) {
                "NOT_FOUND" -> KilnException.NotFound(message)
                "CONFLICT" -> KilnException.Conflict(message)
                "BAD_USER_INPUT", "VALIDATION", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED" -> KilnException.Validation(field, message, (ext?.get("reason") as? JsonPrimitive)?.content)
                "UNAUTHENTICATED" -> KilnException.Unauthenticated(message)
                "FORBIDDEN" -> KilnException.Forbidden(message)
                "MFA_REQUIRED" -> KilnException.MfaRequired((ext?.get("mfaToken") as? JsonPrimitive)?.content ?: "", message)
                "RATE_LIMITED" -> KilnException.RateLimited(ext?.get("retryAfter")?.jsonPrimitive?.intOrNull ?: retryAfter, message)
                else -> KilnException.Server(code, message)
            }
        }
    }
}
