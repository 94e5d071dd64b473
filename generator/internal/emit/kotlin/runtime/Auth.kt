package io.kiln.sdk

import kotlinx.serialization.Serializable
import kotlinx.serialization.builtins.nullable
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put

/** The signed-in user. */
@Serializable
data class User(
    val id: String,
    /** Null for anonymous users. */
    val email: String? = null,
    val anonymous: Boolean,
    val roles: List<String> = emptyList(),
    val createdAt: KilnTime,
)

/** A session: the access token sent with every call and the refresh token that renews it. */
@Serializable
data class Session(
    val accessToken: String,
    val refreshToken: String,
    val expiresAt: KilnTime,
    val user: User,
)

/** Keeps the session between calls (and launches). Implementations must be thread-safe. */
interface SessionStore {
    fun load(): Session?
    fun save(session: Session)
    fun clear()
}

/** The default [SessionStore]: in memory, gone when the process ends. */
class InMemorySessionStore : SessionStore {
    @Volatile private var session: Session? = null
    override fun load(): Session? = session
    override fun save(session: Session) { this.session = session }
    override fun clear() { session = null }
}

/** Sign up, sign in and out. Tokens are refreshed automatically before they expire and on UNAUTHENTICATED. */
class Auth internal constructor(private val t: KilnTransport) {
    /** The current session, or null when signed out. */
    val session: Session? get() = t.config.sessionStore.load()

    /** The signed-in user, or null. */
    val currentUser: User? get() = session?.user

    /** Creates an account (or signs in to an existing one with the same credentials) and stores the session. */
    suspend fun signUp(email: String, password: String): Session = start("signUp", SIGN_UP, credentials(email, password))

    /** Signs in with email and password and stores the session. */
    suspend fun signIn(email: String, password: String): Session = start("signIn", SIGN_IN, credentials(email, password))

    /** Signs in as a new anonymous user (linkAccount adds credentials later). */
    suspend fun signInAnonymously(): Session = start("signInAnonymously", SIGN_IN_ANONYMOUSLY, JsonObject(emptyMap()))

    /** Adds email and password to the signed-in (anonymous) account, keeping its id and data. */
    suspend fun linkAccount(email: String, password: String): Session = t.replacingSession {
        val data = t.execute(LINK_ACCOUNT, credentials(email, password))
        decodeField(data, "linkAccount", Session.serializer()).also { t.config.sessionStore.save(it) }
    }

    /** Changes the password; other sessions end, this one continues with the returned session. */
    suspend fun changePassword(currentPassword: String, newPassword: String): Session = t.replacingSession {
        val data = t.execute(CHANGE_PASSWORD, buildJsonObject { put("currentPassword", currentPassword); put("newPassword", newPassword) })
        decodeField(data, "changePassword", Session.serializer()).also { t.config.sessionStore.save(it) }
    }

    /** Asks for a password-reset email (always succeeds, so it reveals nothing about accounts). */
    suspend fun requestPasswordReset(email: String) {
        t.execute(REQUEST_PASSWORD_RESET, buildJsonObject { put("email", email) }, authenticated = false)
    }

    /** Ends every session of the signed-in user, on every device, and forgets this one. */
    suspend fun signOutEverywhere() {
        try {
            t.execute(SIGN_OUT_EVERYWHERE)
        } finally {
            t.config.sessionStore.clear()
        }
    }

    /** Renews the session now (calls do this by themselves when needed). */
    suspend fun refresh(): Session {
        t.refresh(stale = null) ?: throw KilnException.Unauthenticated("no session to refresh")
        return session ?: throw KilnException.Unauthenticated("no session")
    }

    /** Ends this session on the server and forgets it locally (locally even when the server call fails). */
    suspend fun signOut() {
        val s = session ?: return
        try {
            t.execute(SIGN_OUT, buildJsonObject { put("refreshToken", s.refreshToken) }, authenticated = false)
        } finally {
            t.config.sessionStore.clear()
        }
    }

    /** The user the server sees for the current session, or null. */
    suspend fun viewer(): User? {
        val data = t.execute(VIEWER)
        return decodeField(data, "viewer", User.serializer().nullable)
    }

    private suspend fun start(field: String, document: String, variables: JsonObject): Session {
        val data = t.execute(document, variables, authenticated = false)
        return decodeField(data, field, Session.serializer()).also { t.config.sessionStore.save(it) }
    }

    private fun credentials(email: String, password: String) = buildJsonObject {
        put("input", buildJsonObject { put("email", email); put("password", password) })
    }

    internal companion object {
        const val SIGN_UP = "{{doc signUp}}"
        const val SIGN_IN = "{{doc signIn}}"
        const val SIGN_IN_ANONYMOUSLY = "{{doc signInAnonymously}}"
        const val LINK_ACCOUNT = "{{doc linkAccount}}"
        const val SIGN_OUT = "{{doc signOut}}"
        const val VIEWER = "{{doc viewer}}"
        const val CHANGE_PASSWORD = "{{doc changePassword}}"
        const val REQUEST_PASSWORD_RESET = "{{doc requestPasswordReset}}"
        const val SIGN_OUT_EVERYWHERE = "{{doc signOutEverywhere}}"
    }
}
