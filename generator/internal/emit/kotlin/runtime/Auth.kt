package io.kiln.sdk

import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.Files
import java.nio.file.NoSuchFileException
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.StandardCopyOption
import java.nio.file.StandardOpenOption
import java.nio.file.attribute.PosixFilePermissions
import kotlinx.serialization.Serializable
import kotlinx.serialization.builtins.ListSerializer
import kotlinx.serialization.builtins.nullable
import kotlinx.serialization.builtins.serializer
import kotlinx.serialization.json.JsonArray
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

/** An account at a sign-in provider that signs in to the user. */
@Serializable
data class Identity(
    val provider: String,
    val email: String? = null,
    val emailVerified: Boolean,
    val createdAt: KilnTime,
)

/** A pending TOTP factor: the secret and the otpauth:// URI to show as a QR code. */
@Serializable
data class TotpEnrollment(val secret: String, val uri: String)

/** An activated TOTP factor: the recovery codes (show them once; each works once) and the new aal2 session. */
@Serializable
data class TotpActivation(val recoveryCodes: List<String>, val session: Session)

/**
 * Keeps the session between launches. The client loads it once, when it is
 * constructed, holds it in memory, and saves it on every change: sign-up and
 * sign-in, refresh, linkAccount and changePassword; sign-out clears it.
 *
 * Implementations must be thread-safe. An exception from [save] or [clear]
 * propagates from the call that changed the session (which keeps the new
 * session in memory all the same); one from [load] at construction counts
 * as no session.
 *
 * [InMemorySessionStore] is the default, [FileSessionStore] keeps the session
 * in a file (JVM, servers, desktop); on Android implement it over
 * EncryptedSharedPreferences (see the README).
 */
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

/**
 * A [SessionStore] in one file, as JSON (the refresh token in it is a
 * credential: keep the file where only this user can read it).
 *
 * Every save writes a temporary file beside [path] (created owner-only,
 * `rw-------`, where the file system has POSIX permissions; elsewhere it
 * asks for owner-only access as far as `java.io.File` can), forces it to
 * disk and renames it over [path], so a crash never leaves a half-written
 * session. Missing parent directories are created (owner-only too, on
 * POSIX). [load] answers null when the file does not exist or does not hold
 * a session; an unreadable file throws.
 */
class FileSessionStore(val path: Path) : SessionStore {
    constructor(path: String) : this(Paths.get(path))

    private val lock = Any()

    override fun load(): Session? = synchronized(lock) {
        val bytes = try {
            Files.readAllBytes(path)
        } catch (e: NoSuchFileException) {
            return null
        }
        try {
            KilnJson.decodeFromString(Session.serializer(), String(bytes, Charsets.UTF_8))
        } catch (e: IllegalArgumentException) {
            null // not a session (SerializationException is one): as if signed out
        }
    }

    override fun save(session: Session) = synchronized(lock) {
        write(KilnJson.encodeToString(Session.serializer(), session).toByteArray(Charsets.UTF_8))
    }

    override fun clear() {
        synchronized(lock) { Files.deleteIfExists(path) }
    }

    private fun write(bytes: ByteArray) {
        val target = path.toAbsolutePath()
        val dir = target.parent
        val posix = "posix" in dir.fileSystem.supportedFileAttributeViews()
        if (!Files.isDirectory(dir)) {
            if (posix) Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")))
            else Files.createDirectories(dir)
        }
        val prefix = "." + target.fileName + "."
        val tmp = if (posix) {
            Files.createTempFile(dir, prefix, ".tmp", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))
        } else {
            Files.createTempFile(dir, prefix, ".tmp").also { ownerOnly(it.toFile()) }
        }
        try {
            FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING).use { ch ->
                val buf = ByteBuffer.wrap(bytes)
                while (buf.hasRemaining()) ch.write(buf)
                ch.force(true)
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
            } catch (e: AtomicMoveNotSupportedException) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING)
            }
        } finally {
            Files.deleteIfExists(tmp)
        }
    }

    private fun ownerOnly(f: java.io.File) {
        f.setReadable(false, false); f.setReadable(true, true)
        f.setWritable(false, false); f.setWritable(true, true)
        f.setExecutable(false, false)
    }
}

/** Sign up, sign in and out. Tokens are refreshed automatically before they expire and on UNAUTHENTICATED. */
class Auth internal constructor(private val t: KilnTransport) {
    /** The current session, or null when signed out (held in memory; see [SessionStore]). */
    val session: Session? get() = t.session

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
        decodeField(data, "linkAccount", Session.serializer()).also { t.keep(it) }
    }

    /** Changes the password; other sessions end, this one continues with the returned session. */
    suspend fun changePassword(currentPassword: String, newPassword: String): Session = t.replacingSession {
        val data = t.execute(CHANGE_PASSWORD, buildJsonObject { put("currentPassword", currentPassword); put("newPassword", newPassword) })
        decodeField(data, "changePassword", Session.serializer()).also { t.keep(it) }
    }

    /** Asks for a password-reset email (always succeeds, so it reveals nothing about accounts). */
    suspend fun requestPasswordReset(email: String) {
        t.execute(REQUEST_PASSWORD_RESET, buildJsonObject { put("email", email) }, authenticated = false)
    }

    /**
     * Signs in with the ID token that Sign in with Apple, Google Sign-In or another configured provider's SDK
     * produced, with the raw nonce the app generated for that sign-in (Apple's SDK takes its SHA-256 in hex),
     * and stores the session. Signed in anonymously, the anonymous account becomes the provider's account,
     * keeping its id and data (unless the identity or its verified email already has an account).
     */
    suspend fun signInWithIdToken(provider: String, idToken: String, nonce: String): Session =
        startAsCaller("signInWithIdToken", SIGN_IN_WITH_ID_TOKEN, idTokenInput(provider, idToken, nonce))

    /** Adds a provider's identity to the signed-in account (an anonymous one keeps its id and data); continues with the returned session. */
    suspend fun linkIdentity(provider: String, idToken: String, nonce: String): Session = t.replacingSession {
        val data = t.execute(LINK_IDENTITY, idTokenInput(provider, idToken, nonce))
        decodeField(data, "linkIdentity", Session.serializer()).also { t.keep(it) }
    }

    /**
     * Mails a 6-digit sign-in code to the address (always succeeds, so it reveals nothing about accounts).
     * With [redirectTo] (one of the server's KILN_AUTH_REDIRECT_URIS) the mail also carries a magic link to it
     * with `?email=&code=`: pass those two to [signInWithEmailCode] when the app is opened with it.
     */
    suspend fun requestEmailCode(email: String, redirectTo: String? = null) {
        t.execute(REQUEST_EMAIL_CODE, buildJsonObject { put("email", email); put("redirectTo", redirectTo) }, authenticated = false)
    }

    /**
     * Starts a browser sign-in at a provider without a native SDK: returns the provider's URL to open
     * (Custom Tabs on Android, a browser elsewhere). The browser comes back to [redirectUri] (one of the
     * server's KILN_AUTH_REDIRECT_URIS) with `?code=` for [signInWithRedirectCode], or `?error=`. With
     * [codeChallenge] (base64url SHA-256 of a random verifier the app keeps) the exchange needs the verifier.
     */
    suspend fun startRedirectSignIn(provider: String, redirectUri: String, codeChallenge: String? = null): String {
        val data = t.execute(START_REDIRECT_SIGN_IN, buildJsonObject {
            put("input", buildJsonObject { put("provider", provider); put("redirectUri", redirectUri); put("codeChallenge", codeChallenge) })
        }, authenticated = false)
        return decodeField(data, "startRedirectSignIn", String.serializer())
    }

    /**
     * Exchanges the one-time code the redirect brought back (two minutes, single use) for a session and stores
     * it; an anonymous account keeps its id and data as with [signInWithIdToken].
     */
    suspend fun signInWithRedirectCode(code: String, codeVerifier: String? = null): Session =
        startAsCaller("signInWithRedirectCode", SIGN_IN_WITH_REDIRECT_CODE, buildJsonObject { put("code", code); put("codeVerifier", codeVerifier) })

    /** Removes the signed-in user's identities at [provider] (never the account's last way to sign in). */
    suspend fun unlinkIdentity(provider: String) {
        t.execute(UNLINK_IDENTITY, buildJsonObject { put("provider", provider) })
    }

    /** The signed-in user's identities at sign-in providers, oldest first. */
    suspend fun identities(): List<Identity> {
        val data = t.execute(IDENTITIES)
        val viewer = data["viewer"] as? JsonObject ?: throw KilnException.Unauthenticated("not signed in")
        return KilnJson.decodeFromJsonElement(ListSerializer(Identity.serializer()), viewer["identities"] ?: JsonArray(emptyList()))
    }

    /**
     * Completes a sign-in that failed with [KilnException.MfaRequired]: its [KilnException.MfaRequired.mfaToken]
     * and a code of the authenticator app (or a recovery code). Stores the aal2 session.
     */
    suspend fun completeMfaSignIn(mfaToken: String, code: String): Session =
        start("completeMfaSignIn", COMPLETE_MFA_SIGN_IN, buildJsonObject { put("mfaToken", mfaToken); put("code", code) })

    /** Starts a TOTP factor: show [TotpEnrollment.uri] as a QR code, then [confirmTotp] with a first code. */
    suspend fun enrollTotp(): TotpEnrollment {
        val data = t.execute(ENROLL_TOTP)
        return decodeField(data, "enrollTotp", TotpEnrollment.serializer())
    }

    /** Activates the pending TOTP factor with a first code; continues with the returned aal2 session (other sessions end). */
    suspend fun confirmTotp(code: String): TotpActivation = t.replacingSession {
        val data = t.execute(CONFIRM_TOTP, buildJsonObject { put("code", code) })
        decodeField(data, "confirmTotp", TotpActivation.serializer()).also { t.keep(it.session) }
    }

    /** Removes the TOTP factor and its recovery codes (needs an aal2 session). */
    suspend fun disableTotp() {
        t.execute(DISABLE_TOTP)
    }

    /** Signs in with the code of requestEmailCode's mail (creating the account when the address has none) and stores the session. */
    suspend fun signInWithEmailCode(email: String, code: String): Session =
        start("signInWithEmailCode", SIGN_IN_WITH_EMAIL_CODE, buildJsonObject { put("email", email); put("code", code) })

    /** Mails the signed-in user a new code for the email the account holds (one is mailed after signUp and linkAccount). */
    suspend fun requestEmailVerification() {
        t.execute(REQUEST_EMAIL_VERIFICATION)
    }

    /** Marks the account's email verified with the code of the verification mail; continues with the returned session. */
    suspend fun verifyEmail(code: String): Session = t.replacingSession {
        val data = t.execute(VERIFY_EMAIL, buildJsonObject { put("code", code) })
        decodeField(data, "verifyEmail", Session.serializer()).also { t.keep(it) }
    }

    /** Ends every session of the signed-in user, on every device, and forgets this one. */
    suspend fun signOutEverywhere() {
        t.checkOpen()
        try {
            t.execute(SIGN_OUT_EVERYWHERE)
        } finally {
            t.forget()
        }
    }

    /** Renews the session now (calls do this by themselves when needed). */
    suspend fun refresh(): Session {
        t.refresh(stale = null) ?: throw KilnException.Unauthenticated("no session to refresh")
        return session ?: throw KilnException.Unauthenticated("no session")
    }

    /** Ends this session on the server and forgets it locally (locally even when the server call fails). */
    suspend fun signOut() {
        t.checkOpen()
        val s = session ?: return
        try {
            t.execute(SIGN_OUT, buildJsonObject { put("refreshToken", s.refreshToken) }, authenticated = false)
        } finally {
            t.forget()
        }
    }

    /** The user the server sees for the current session, or null. */
    suspend fun viewer(): User? {
        val data = t.execute(VIEWER)
        return decodeField(data, "viewer", User.serializer().nullable)
    }

    /**
     * [start], sending the session's token when it is anonymous (the server then upgrades that account); an
     * anonymous session the server no longer accepts is left out rather than failing the sign-in.
     */
    private suspend fun startAsCaller(field: String, document: String, variables: JsonObject): Session {
        if (t.session?.user?.anonymous != true) return start(field, document, variables)
        val data = try {
            t.execute(document, variables)
        } catch (e: KilnException.Unauthenticated) {
            return start(field, document, variables)
        }
        return decodeField(data, field, Session.serializer()).also { t.keep(it) }
    }

    private suspend fun start(field: String, document: String, variables: JsonObject): Session {
        val data = t.execute(document, variables, authenticated = false)
        return decodeField(data, field, Session.serializer()).also { t.keep(it) }
    }

    /** Registers this device's FCM registration token (or APNs token) for the signed-in user; call it after each sign-in and whenever the token changes. Signing out removes it. */
    suspend fun registerDevice(token: String, appID: String, platform: DevicePlatform = DevicePlatform.ANDROID, locale: String? = null) {
        t.execute(REGISTER_DEVICE, buildJsonObject {
            put("input", buildJsonObject {
                put("platform", platform.name); put("token", token); put("appID", appID)
                if (locale != null) put("locale", locale)
            })
        })
    }

    /** Stops push notifications to a device of the signed-in user; false when the user has no device with the token. */
    suspend fun unregisterDevice(token: String): Boolean =
        decodeField(t.execute(UNREGISTER_DEVICE, buildJsonObject { put("token", token) }), "unregisterDevice", Boolean.serializer())

    /** Subscribes a device of the signed-in user to a topic; false when the user has no device with the token. */
    suspend fun subscribeToTopic(token: String, topic: String): Boolean =
        decodeField(t.execute(SUBSCRIBE_TO_TOPIC, buildJsonObject { put("token", token); put("topic", topic) }), "subscribeToTopic", Boolean.serializer())

    /** Unsubscribes a device of the signed-in user from a topic; false when the user has no device with the token. */
    suspend fun unsubscribeFromTopic(token: String, topic: String): Boolean =
        decodeField(t.execute(UNSUBSCRIBE_FROM_TOPIC, buildJsonObject { put("token", token); put("topic", topic) }), "unsubscribeFromTopic", Boolean.serializer())

    private fun idTokenInput(provider: String, idToken: String, nonce: String) = buildJsonObject {
        put("input", buildJsonObject { put("provider", provider); put("idToken", idToken); put("nonce", nonce) })
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
        const val SIGN_IN_WITH_ID_TOKEN = "{{doc signInWithIdToken}}"
        const val LINK_IDENTITY = "{{doc linkIdentity}}"
        const val REQUEST_EMAIL_CODE = "{{doc requestEmailCode}}"
        const val SIGN_IN_WITH_EMAIL_CODE = "{{doc signInWithEmailCode}}"
        const val REQUEST_EMAIL_VERIFICATION = "{{doc requestEmailVerification}}"
        const val VERIFY_EMAIL = "{{doc verifyEmail}}"
        const val START_REDIRECT_SIGN_IN = "{{doc startRedirectSignIn}}"
        const val SIGN_IN_WITH_REDIRECT_CODE = "{{doc signInWithRedirectCode}}"
        const val UNLINK_IDENTITY = "{{doc unlinkIdentity}}"
        const val IDENTITIES = "{{doc identities}}"
        const val COMPLETE_MFA_SIGN_IN = "{{doc completeMfaSignIn}}"
        const val ENROLL_TOTP = "{{doc enrollTotp}}"
        const val CONFIRM_TOTP = "{{doc confirmTotp}}"
        const val DISABLE_TOTP = "{{doc disableTotp}}"
        const val REGISTER_DEVICE = "{{doc registerDevice}}"
        const val UNREGISTER_DEVICE = "{{doc unregisterDevice}}"
        const val SUBSCRIBE_TO_TOPIC = "{{doc subscribeToTopic}}"
        const val UNSUBSCRIBE_FROM_TOPIC = "{{doc unsubscribeFromTopic}}"
    }
}

/** The push service of a device: APNs for IOS, FCM for ANDROID. */
enum class DevicePlatform { IOS, ANDROID }
