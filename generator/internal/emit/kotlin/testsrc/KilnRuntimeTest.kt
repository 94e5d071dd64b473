package io.kiln.sdk

// The SDK's own tests, generated with it: they test the runtime (errors,
// JSON, pages, session stores, close) with types of their own, never the
// app's models, so that they pass whatever the app's schema holds. They
// need no server: KilnTestServer plays one on 127.0.0.1.

import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.attribute.PosixFilePermissions
import java.time.Instant
import java.util.concurrent.TimeUnit
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.jsonPrimitive
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody

class KilnRuntimeTest {
    private fun error(code: String, extra: String = "") =
        """{"errors":[{"message":"m","extensions":{"code":"$code"$extra}}],"data":null}"""

    @Test
    fun errorsAreTyped() {
        fun parse(status: Int, body: String, retryAfter: Int? = null) =
            runCatching { KilnTransport.parseResponse(status, body, retryAfter) }.exceptionOrNull()
        assertIs<KilnException.NotFound>(parse(200, error("NOT_FOUND")))
        assertIs<KilnException.Conflict>(parse(200, error("CONFLICT")))
        assertEquals("handle", assertIs<KilnException.Validation>(parse(200, error("BAD_USER_INPUT", ""","field":"handle""""))).field)
        assertEquals("TOO_LARGE", assertIs<KilnException.Validation>(parse(200, error("BAD_USER_INPUT", ""","reason":"TOO_LARGE""""))).reason)
        assertIs<KilnException.Unauthenticated>(parse(200, error("UNAUTHENTICATED")))
        assertIs<KilnException.Forbidden>(parse(200, error("FORBIDDEN")))
        assertEquals(7, assertIs<KilnException.RateLimited>(parse(200, error("RATE_LIMITED", ""","retryAfter":7"""))).retryAfterSeconds)
        assertEquals(3, assertIs<KilnException.RateLimited>(parse(429, "too many requests", retryAfter = 3)).retryAfterSeconds)
        assertIs<KilnException.Unauthenticated>(parse(401, "the Authorization header must be: Bearer <access token>"))
        assertEquals("UNAVAILABLE", assertIs<KilnException.Server>(parse(200, error("UNAVAILABLE"))).code)
        assertIs<KilnException.Decoding>(parse(200, "<html>"))
        assertEquals(JsonPrimitive(1), KilnTransport.parseResponse(200, """{"data":{"x":1}}""", null)["x"])
    }

    @Test
    fun patchTellsNullFromAValue() {
        assertEquals(Patch.Null, Patch.of<String>(null))
        assertEquals(Patch.Value("t"), Patch.of("t"))
        assertIs<Patch.Absent>(Patch.Absent)
    }

    @Serializable
    data class Stamped(val id: String, val at: KilnTime, val file: KilnFile? = null, val note: String? = null)

    @Test
    fun timesAreRfc3339AndUnknownFieldsIgnored() {
        // "extra" is a field this client does not know (the server's schema grew): ignored.
        val json = """{"id":"1","at":"2026-11-25T05:47:01.123456789Z","extra":{"a":[1,2]},"file":{"id":"f1","filename":"a.png","contentType":"image/png","size":3,"sha256":null,"url":"http://x/f1","createdAt":"2026-11-25T06:47:01+01:00"}}"""
        val s = KilnJson.decodeFromString(Stamped.serializer(), json)
        assertEquals(Instant.parse("2026-11-25T05:47:01.123456789Z"), s.at)
        assertEquals(Instant.parse("2026-11-25T05:47:01Z"), s.file?.createdAt)
        assertNull(s.note)
        val encoded = KilnJson.encodeToString(Stamped.serializer(), s)
        assertEquals("2026-11-25T05:47:01.123456789Z", encoded.substringAfter("\"at\":\"").substringBefore("\""))
        assertFalse("note" in encoded, "nulls are left out: $encoded")
    }

    @Serializable
    data class Item(val id: String)

    @Test
    fun pagesDecode() {
        val connection = KilnJson.parseToJsonElement(
            """{"edges":[{"cursor":"c1","node":{"id":"1"}},{"cursor":"c2","node":null},{"cursor":"c3","node":{"id":"3"}}],"pageInfo":{"hasNextPage":true,"hasPreviousPage":false,"startCursor":"c1","endCursor":"c3"},"totalCount":5}""")
        val page = decodePage(connection, Item.serializer())
        assertEquals(listOf("1", "3"), page.items.map { it.id })
        assertEquals(listOf("c1", "c3"), page.cursors)
        assertEquals("c3", page.nextCursor)
        assertEquals(5, page.totalCount)
        val last = decodePage(KilnJson.parseToJsonElement("""{"edges":[],"pageInfo":{"hasNextPage":false,"hasPreviousPage":true},"totalCount":0}"""), Item.serializer())
        assertNull(last.nextCursor)
        assertIs<KilnException.Decoding>(runCatching { decodePage(JsonObject(emptyMap()), Item.serializer()) }.exceptionOrNull())
    }

    private fun session(access: String, refresh: String) = KilnJson.decodeFromString(Session.serializer(), sessionJson(access, refresh))

    private fun sessionJson(access: String, refresh: String) =
        """{"accessToken":"$access","refreshToken":"$refresh","expiresAt":"2099-01-02T03:04:05Z","user":{"id":"u1","email":"ada@example.com","anonymous":false,"roles":[],"createdAt":"2024-01-02T03:04:05Z"}}"""

    private fun tempDir(): Path = Files.createTempDirectory("kiln-session-test")

    private fun posix(p: Path) = "posix" in p.fileSystem.supportedFileAttributeViews()

    @Test
    fun fileSessionStoreWritesAtomicallyAndOwnerOnly() {
        val dir = tempDir()
        val path = dir.resolve("nested").resolve("session.json")
        val store = FileSessionStore(path)
        assertNull(store.load(), "no file: no session")
        val s = session("a1", "r1")
        store.save(s)
        assertEquals(s, store.load())
        assertEquals(s, FileSessionStore(path.toString()).load(), "another store on the same file reads it")
        if (posix(path)) {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(path)))
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(path.parent)))
        }
        store.save(session("a2", "r2"))
        assertEquals("a2", store.load()?.accessToken)
        // Only the session file is left: the temporary files were renamed over it.
        assertEquals(listOf("session.json"), Files.list(path.parent).use { l -> l.map { it.fileName.toString() }.toList() })
        store.clear()
        assertFalse(Files.exists(path))
        assertNull(store.load())
        store.clear() // clearing nothing is fine
        Files.write(path, "not a session".toByteArray())
        assertNull(store.load(), "a file that holds no session reads as none")
    }

    @Test
    fun clientLoadsTheSessionAndSavesEveryChange() = runBlocking {
        var n = 0
        KilnTestServer { req ->
            val query = req["query"]?.jsonPrimitive?.content ?: ""
            when {
                "signIn(" in query -> """{"data":{"signIn":${sessionJson("a1", "r1")}}}"""
                "refreshSession(" in query -> { n++; """{"data":{"refreshSession":${sessionJson("a-fresh-$n", "r-fresh-$n")}}}""" }
                "signOut(" in query -> """{"data":{"signOut":true}}"""
                else -> """{"data":{"viewer":null}}"""
            }
        }.use { server ->
            val path = tempDir().resolve("session.json")
            val store = FileSessionStore(path)
            KilnClient(KilnConfig(server.url, sessionStore = store)).use { kiln ->
                assertNull(kiln.auth.session)
                kiln.auth.signIn("ada@example.com", "correct horse battery")
                assertEquals("a1", store.load()?.accessToken, "sign-in saves")
            }
            // A new client (the next launch) starts signed in, from the file.
            KilnClient(KilnConfig(server.url, sessionStore = FileSessionStore(path))).use { kiln ->
                assertEquals("a1", kiln.auth.session?.accessToken)
                assertEquals("u1", kiln.auth.currentUser?.id)
                kiln.auth.viewer()
                assertEquals("Bearer a1", server.authorizations.last(), "the stored token is sent")
                kiln.auth.refresh()
                assertEquals("a-fresh-1", kiln.auth.session?.accessToken)
                assertEquals("r-fresh-1", store.load()?.refreshToken, "refresh saves")
                kiln.auth.signOut()
                assertNull(kiln.auth.session)
                assertFalse(Files.exists(path), "sign-out clears")
            }
            assertEquals("r1", server.requests.first { "refreshSession(" in (it["query"]?.jsonPrimitive?.content ?: "") }["variables"]!!.let { (it as JsonObject)["refreshToken"]!!.jsonPrimitive.content })
        }
    }

    @Test
    fun closeEndsCallsAndLeavesAnAppsHttpClientRunning() = runBlocking {
        KilnTestServer().use { server ->
            val own = KilnClient(server.url)
            own.auth.viewer()
            own.close()
            own.close() // twice is fine
            assertTrue(own.isClosed)
            assertTrue(own.transport.httpClient.dispatcher.executorService.isShutdown, "the SDK's own OkHttpClient is shut down")
            assertFailsWith<KilnException.Closed> { own.auth.viewer() }
            assertFailsWith<KilnException.Closed> { own.files.download("f1") }

            val http = OkHttpClient()
            try {
                val shared = KilnClient(KilnConfig(server.url, httpClient = http))
                shared.auth.viewer()
                shared.close()
                assertFailsWith<KilnException.Closed> { shared.auth.viewer() }
                assertFalse(http.dispatcher.executorService.isShutdown, "an OkHttpClient the app passed is left running")
                http.newCall(Request.Builder().url(server.url).post("{}".toRequestBody()).build()).execute().use { r ->
                    assertEquals(200, r.code)
                }
            } finally {
                http.dispatcher.executorService.shutdown()
                http.connectionPool.evictAll()
            }
        }
    }

    /**
     * A JVM program that used a client and closes it exits at once: no
     * OkHttp thread is left to keep it alive (before close() existed, its
     * dispatcher's idle threads kept a JVM alive for a minute). The program
     * (KilnCloseProbe) runs in a child JVM, and checks its own threads.
     */
    @Test
    fun closeLetsTheJvmExit() {
        val java = Paths.get(System.getProperty("java.home"), "bin", "java").toString()
        val process = ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), KilnCloseProbe::class.java.name)
            .redirectErrorStream(true)
            .start()
        val output = StringBuilder()
        val reader = Thread { output.append(process.inputStream.bufferedReader().readText()) }.apply { isDaemon = true; start() }
        // A generous bound, so that a hung child fails the test instead of hanging it.
        if (!process.waitFor(5, TimeUnit.MINUTES)) {
            process.destroyForcibly()
            error("the program did not exit after close()")
        }
        reader.join(10_000)
        assertEquals(0, process.exitValue(), "the program's output:\n$output")
        assertTrue("closed cleanly" in output, "the program's output:\n$output")
    }

    @Test
    fun theClientKeepsWhatItWasGiven() {
        val store = InMemorySessionStore()
        store.save(session("a0", "r0"))
        KilnClient(KilnConfig("http://127.0.0.1:1/graphql", sessionStore = store)).use { kiln ->
            assertNotNull(kiln.auth.session)
            assertEquals("ws://127.0.0.1:1/graphql", kiln.transport.webSocketUrl)
        }
    }
}
