package io.kiln.sdk

// Hand-written (not generated): runs the generated SDK against a live Kiln
// server serving the example schema. clients/kotlin_test.go copies this
// file into a copy of clients/kotlin (src/test), starts the server and
// passes its GraphQL URL in KILN_URL; without it the tests skip. It lives
// outside clients/kotlin because it is the example's test, written against
// the example's models: the SDK's own tests (src/test there, generated)
// must pass whatever the schema.

import java.util.UUID
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.jupiter.api.Assumptions.assumeTrue

class LiveTest {
    private val url: String? = System.getenv("KILN_URL")

    private fun client(): KilnClient {
        assumeTrue(url != null, "KILN_URL is not set: no live server")
        return KilnClient(url!!)
    }

    @Test
    fun signUpCreateListUpdateSubscribeSignOut() = runBlocking {
        val ada = client()
        val tag = UUID.randomUUID().toString().take(8)
        val session = ada.auth.signUp("ada-$tag@example.com", "correct horse battery $tag")
        ada.auth.requestEmailVerification() // a new code for the address, mailed to the test SMTP server
        assertEquals(false, session.user.anonymous)
        assertEquals(session.user.id, ada.auth.viewer()?.id)

        // Validation errors name the field.
        val invalid = assertFailsWith<KilnException.Validation> {
            ada.profiles.create(CreateProfileInput(handle = "NO!", displayName = "Ada"))
        }
        assertEquals("handle", invalid.field)

        val profile = ada.profiles.create(CreateProfileInput(handle = "ada_$tag", displayName = "Ada", interests = listOf(Interest.TECH)))
        assertEquals(listOf(Interest.TECH), profile.interests)
        assertEquals(profile, ada.profiles.get(profile.id))

        val posts = (1..3).map { i ->
            ada.posts.create(CreatePostInput(authorID = profile.id, body = "hello $tag $i", title = "t$i"))
        }
        assertEquals(Visibility.PUBLIC, posts[0].visibility)

        // List with a filter and pagination.
        val where = postWhere { bodyContains = "hello $tag"; authorID = profile.id }
        val order = listOf(PostOrder(PostOrderField.TITLE, OrderDirection.DESC))
        val page1 = ada.posts.list(where = where, orderBy = order, first = 2)
        assertEquals(3, page1.totalCount)
        assertEquals(listOf("hello $tag 3", "hello $tag 2"), page1.items.map { it.body })
        assertNotNull(page1.nextCursor)
        val page2 = ada.posts.list(where = where, orderBy = order, first = 2, after = page1.nextCursor)
        assertEquals(listOf("hello $tag 1"), page2.items.map { it.body })
        assertNull(page2.nextCursor)
        var all = 0
        ada.posts.listAll(where = where, pageSize = 1).collect { all++ }
        assertEquals(3, all)

        // Updates: absent vs null, then a stale version is a conflict.
        val p = posts[0]
        val updated = ada.posts.update(p.id, UpdatePostInput(version = p.version, title = Patch.Null, body = "edited $tag"))
        assertEquals(p.version + 1, updated.version)
        assertNull(updated.title)
        assertEquals("edited $tag", updated.body)
        assertFailsWith<KilnException.Conflict> {
            ada.posts.update(p.id, UpdatePostInput(version = p.version, body = "stale"))
        }
        assertEquals("edited $tag", ada.posts.get(p.id)?.body)

        // Subscribe as another (anonymous) client; a post Ada creates arrives.
        val bob = client()
        bob.auth.signInAnonymously()
        val received = async {
            withTimeout(20_000) {
                bob.posts.created(postWhere { bodyHasPrefix = "live $tag" }).first()
            }
        }
        var sent: Post? = null
        while (!received.isCompleted) {
            delay(300)
            if (!received.isCompleted) sent = ada.posts.create(CreatePostInput(authorID = profile.id, body = "live $tag ${System.nanoTime()}"))
        }
        val event = received.await()
        assertTrue(event.body.startsWith("live $tag"))
        assertEquals(profile.id, event.authorID)
        assertNotNull(sent)

        // Delete, then the record is gone.
        assertEquals(posts[1].id, ada.posts.delete(posts[1].id))
        assertNull(ada.posts.get(posts[1].id))

        // Custom operations are typed functions.
        val feed = ada.operations.feed(first = 2)
        assertEquals(2, feed.posts.edges?.size)
        val published = ada.operations.publish(authorID = profile.id, body = "published $tag")
        assertEquals("published $tag", published.createPost.body)

        // A relation the viewer may not read is null, the record stays: Bob
        // likes a post, Ada makes it private, Bob's like keeps its postID.
        val bobProfile = bob.profiles.create(CreateProfileInput(handle = "bob_$tag", displayName = "Bob"))
        assertNotNull(bobProfile)
        val liked = ada.posts.create(CreatePostInput(authorID = profile.id, body = "liked $tag"))
        bob.likes.create(CreateLikeInput(postID = liked.id))
        ada.posts.update(liked.id, UpdatePostInput(visibility = Visibility.PRIVATE))
        val like = bob.operations.myLikes(first = 100).likes.edges.orEmpty().mapNotNull { it?.node }.single { it.postID == liked.id }
        assertNull(like.post, "a like of a post Bob may no longer read has post == null")
        assertEquals(liked.id, ada.operations.myLikes(first = 100).likes.edges.orEmpty().mapNotNull { it?.node }.single { it.postID == liked.id }.post?.id)

        // Sign out: the session is gone and writes are refused.
        val refresh = ada.auth.session!!.refreshToken
        ada.auth.signOut()
        assertNull(ada.auth.session)
        assertNull(ada.auth.viewer())
        // A client whose stored session has that (revoked) refresh token.
        val store = InMemorySessionStore().apply { save(session.copy(refreshToken = refresh, expiresAt = java.time.Instant.EPOCH)) }
        KilnClient(KilnConfig(url!!, sessionStore = store)).use { stale ->
            assertFailsWith<KilnException.Unauthenticated> { stale.auth.refresh() }
            assertNull(stale.auth.session)
            assertNull(store.load(), "the store is cleared too")
        }
        ada.close()
        bob.close()
    }

    @Test
    fun refreshesAnExpiringToken() = runBlocking {
        val s = client().use { it.auth.signInAnonymously() }
        // Each client below is a new launch that loads the session from the store.
        val store = InMemorySessionStore()
        // Pretend the access token expires now: the next call refreshes first.
        store.save(s.copy(expiresAt = java.time.Instant.now()))
        val c = KilnClient(KilnConfig(url!!, sessionStore = store))
        assertEquals(s.user.id, c.auth.viewer()?.id)
        assertTrue(c.auth.session!!.accessToken != s.accessToken || c.auth.session!!.refreshToken != s.refreshToken)
        assertEquals(c.auth.session, store.load(), "the refreshed session is saved")
        c.close()
        // A garbage access token answers UNAUTHENTICATED; the SDK refreshes and retries.
        store.save(store.load()!!.copy(accessToken = "garbage"))
        KilnClient(KilnConfig(url, sessionStore = store)).use { g ->
            assertEquals(s.user.id, g.auth.viewer()?.id)
            assertTrue(g.auth.session!!.accessToken != "garbage")
        }
    }

    /**
     * A session kept in a FileSessionStore survives the client (a launch of
     * an app): the next client starts signed in; close() then ends a live
     * subscription without an error, and later calls throw Closed.
     */
    @Test
    fun fileSessionAndClose() = runBlocking {
        assumeTrue(url != null, "KILN_URL is not set: no live server")
        val path = java.nio.file.Files.createTempDirectory("kiln-live").resolve("session.json")
        val first = KilnClient(KilnConfig(url!!, sessionStore = FileSessionStore(path)))
        val s = first.auth.signInAnonymously()
        first.close()
        val kiln = KilnClient(KilnConfig(url, sessionStore = FileSessionStore(path)))
        assertEquals(s.accessToken, kiln.auth.session?.accessToken)
        assertEquals(s.user.id, kiln.auth.viewer()?.id)
        val ended = CompletableDeferred<Throwable?>()
        val job = launch {
            try {
                kiln.posts.created().collect { }
                ended.complete(null)
            } catch (e: Throwable) {
                ended.complete(e)
            }
        }
        // Wait until the subscription's socket is open (a running call of the client's OkHttpClient), then close.
        withTimeout(30_000) {
            while (kiln.transport.httpClient.dispatcher.runningCallsCount() == 0) delay(20)
        }
        kiln.close()
        assertNull(withTimeout(30_000) { ended.await() }, "close() ends a subscription without an error")
        job.join()
        assertFailsWith<KilnException.Closed> { kiln.auth.viewer() }
        assertEquals(s.refreshToken, FileSessionStore(path).load()?.refreshToken, "close() keeps the stored session")
    }

    @Test
    fun persistedQueries() = runBlocking {
        val allowURL = System.getenv("KILN_ALLOWLIST_URL")
        assumeTrue(url != null && allowURL != null, "KILN_URL / KILN_ALLOWLIST_URL are not set: no live server")
        // A default server learns the text on the first call (automatic persisted queries).
        val apq = KilnClient(KilnConfig(url!!, persistedQueries = true))
        apq.auth.signInAnonymously() // authors are readable by signed-in users only
        apq.operations.feed(first = 1)
        apq.operations.feed(first = 1)
        // An allow-list server knows the operations by hash; other documents
        // are refused (its database is empty, so the anonymous feed is too).
        val bodies = java.util.Collections.synchronizedList(ArrayList<String>())
        val recording = okhttp3.OkHttpClient.Builder().addInterceptor { chain ->
            val buf = okio.Buffer()
            chain.request().body?.writeTo(buf)
            bodies.add(buf.readUtf8())
            chain.proceed(chain.request())
        }.build()
        val allow = KilnClient(KilnConfig(allowURL!!, httpClient = recording, persistedQueries = true))
        assertTrue((allow.operations.feed(first = 1).posts.edges ?: emptyList()).isEmpty())
        assertEquals(1, bodies.size)
        assertTrue(!bodies[0].contains("\"query\"") && bodies[0].contains(Operations.FEED_HASH), bodies[0])
        val refused = assertFailsWith<KilnException.Server> { allow.posts.list(first = 1) }
        assertEquals("PERSISTED_QUERY_NOT_ALLOWED", refused.code)
    }

    /**
     * A password change makes the server close the subscriber's socket
     * (4403, KILN_WS_REVALIDATE is short in the test server): the flow
     * reconnects with the new session, resubscribes, and events keep coming.
     */
    @Test
    fun subscriptionReconnectsAndResubscribes() = runBlocking {
        val ada = client()
        val tag = UUID.randomUUID().toString().take(8)
        ada.auth.signUp("ada2-$tag@example.com", "correct horse battery $tag")
        val profile = ada.profiles.create(CreateProfileInput(handle = "ada2_$tag", displayName = "Ada"))

        val bob = client()
        bob.auth.signUp("bob-$tag@example.com", "first password $tag")
        val reconnected = CompletableDeferred<Unit>()
        bob.subscriptions.onReconnect = { reconnected.complete(Unit) }
        val events = Channel<Post>(Channel.UNLIMITED)
        val job = launch { bob.posts.created(postWhere { bodyHasPrefix = "again $tag" }).collect { events.send(it) } }

        suspend fun publishUntilReceived(round: Int): Post = withTimeout(20_000) {
            while (true) {
                ada.posts.create(CreatePostInput(authorID = profile.id, body = "again $tag $round"))
                val got = withTimeoutOrNull(300) { events.receive() }
                if (got != null && got.body == "again $tag $round") return@withTimeout got
            }
            @Suppress("UNREACHABLE_CODE") error("unreachable")
        }

        publishUntilReceived(1)
        val before = bob.auth.session!!.accessToken
        bob.auth.changePassword("first password $tag", "second password $tag")
        withTimeout(20_000) { reconnected.await() }
        assertTrue(bob.auth.session!!.accessToken != before)
        publishUntilReceived(2)
        job.cancel()
    }

    /** Files on the server's local disk store (the default). */
    @Test
    fun signInWithProviders() = runBlocking {
        val app = client()
        val idToken = System.getenv("KILN_TEST_ID_TOKEN")
        assumeTrue(idToken != null, "KILN_TEST_ID_TOKEN is not set: no test OpenID provider")
        // The native flow: an ID token the provider's SDK would give the app.
        val session = app.auth.signInWithIdToken("test", idToken!!, System.getenv("KILN_TEST_ID_NONCE")!!)
        assertEquals("kotlin-id@example.com", session.user.email)
        assertEquals(listOf("test"), app.auth.identities().map { it.provider })
        // The only way in cannot be unlinked.
        assertFailsWith<KilnException.Conflict> { app.auth.unlinkIdentity("test") }
        val replay = assertFailsWith<KilnException.Unauthenticated> { app.auth.signInWithIdToken("test", idToken, "another-nonce") }
        assertTrue(replay.message!!.contains("nonce"), replay.message)

        // The browser flow: open the URL, follow the provider and the
        // server's callback to the app's redirect, exchange the code.
        // Signed in anonymously first: the account is kept (the SDK sends
        // the anonymous session with the exchange).
        val browser = client()
        val anonymous = browser.auth.signInAnonymously()
        val start = browser.auth.startRedirectSignIn("test", "io.kiln.test:/auth")
        var location = start
        var code: String? = null
        for (hop in 1..4) {
            val conn = java.net.URI(location).toURL().openConnection() as java.net.HttpURLConnection
            conn.instanceFollowRedirects = false
            assertEquals(302, conn.responseCode, "hop $hop to $location")
            location = conn.getHeaderField("Location")
            conn.disconnect()
            if (location.startsWith("io.kiln.test:/auth?")) {
                code = location.substringAfter("code=").substringBefore("&")
                break
            }
        }
        assertNotNull(code, "the browser never came back to the app")
        val redirected = browser.auth.signInWithRedirectCode(code!!)
        assertEquals("kotlin-redirect@example.com", redirected.user.email)
        assertEquals(anonymous.user.id, redirected.user.id)
        assertFalse(redirected.user.anonymous)
        assertFailsWith<KilnException.Unauthenticated> { browser.auth.signInWithRedirectCode(code) }
        assertFailsWith<KilnException.Validation> { browser.auth.startRedirectSignIn("test", "io.evil.app:/auth") }
        app.close()
        browser.close()
    }

    @Test
    fun signInWithEmailCode() = runBlocking {
        val app = client()
        val mailbox = System.getenv("KILN_TEST_MAILBOX")
        assumeTrue(mailbox != null, "KILN_TEST_MAILBOX is not set: no test SMTP server")
        val address = "kotlin-code-${UUID.randomUUID().toString().take(8)}@example.com"
        app.auth.requestEmailCode(address)
        // The mail leaves the server in the background: ask the mailbox a bounded number of times.
        var code: String? = null
        for (attempt in 1..200) {
            val conn = java.net.URI("$mailbox/code?to=$address").toURL().openConnection() as java.net.HttpURLConnection
            if (conn.responseCode == 200) code = conn.inputStream.readBytes().toString(Charsets.UTF_8)
            conn.disconnect()
            if (code != null) break
            delay(50)
        }
        assertNotNull(code, "no sign-in code mailed to $address")
        val session = app.auth.signInWithEmailCode(address, code!!)
        assertEquals(address, session.user.email)
        assertFailsWith<KilnException.Unauthenticated> { app.auth.signInWithEmailCode(address, code) }
        app.close()
    }

    /** A device registered through the SDK gets a push (FCM) when another user comments on its user's post. */
    @Test
    fun pushForANewComment() = runBlocking {
        val mailbox = System.getenv("KILN_TEST_MAILBOX")
        val pushURL = System.getenv("KILN_PUSH_URL")
        assumeTrue(mailbox != null && pushURL != null, "KILN_PUSH_URL or KILN_TEST_MAILBOX is not set: no server with a fake FCM")
        val tag = UUID.randomUUID().toString().take(8)
        val ada = KilnClient(pushURL!!)
        ada.auth.signUp("push-ada-$tag@example.com", "correct horse battery $tag")
        val profile = ada.profiles.create(CreateProfileInput(handle = "push_ada_$tag", displayName = "Ada"))
        val post = ada.posts.create(CreatePostInput(authorID = profile.id, body = "push $tag"))
        val token = "kotlin-fcm-$tag"
        ada.auth.registerDevice(token, "com.example.app")

        val bob = KilnClient(pushURL)
        bob.auth.signUp("push-bob-$tag@example.com", "correct horse battery $tag")
        bob.profiles.create(CreateProfileInput(handle = "push_bob_$tag", displayName = "Bob"))
        bob.comments.create(CreateCommentInput(postID = post.id, body = "nice $tag"))

        // Delivery is a job: ask the fake FCM a bounded number of times.
        var titles = ""
        for (attempt in 1..200) {
            val conn = java.net.URI("$mailbox/push?token=$token").toURL().openConnection() as java.net.HttpURLConnection
            titles = conn.inputStream.readBytes().toString(Charsets.UTF_8)
            conn.disconnect()
            if (titles.isNotEmpty()) break
            delay(50)
        }
        assertTrue(titles.isNotEmpty(), "the fake FCM received no notification for $token")
        assertEquals(1, titles.trim().lines().size, titles)
        ada.close()
        bob.close()
    }

    @Test
    fun filesOnDisk() = runBlocking { filesRoundTrip(client()) }

    /** Files on S3: a server with KILN_S3_* set (clients/kotlin_test.go starts it when KILN_TEST_S3_ENDPOINT is set). */
    @Test
    fun filesOnS3() = runBlocking {
        val s3 = System.getenv("KILN_S3_URL")
        assumeTrue(s3 != null, "KILN_S3_URL is not set: no S3-backed server")
        filesRoundTrip(KilnClient(s3!!))
    }

    /**
     * Uploads through the ticket flow with progress, attaches the files to a
     * profile (avatar) and a post (attachments), reads them back and
     * downloads the bytes; another user gets neither the private file nor its
     * url, nor may attach it; refused uploads and attaches carry their reason.
     */
    private suspend fun filesRoundTrip(ada: KilnClient) {
        val tag = UUID.randomUUID().toString().take(8)
        ada.auth.signUp("files-$tag@example.com", "correct horse battery $tag")
        val profile = ada.profiles.create(CreateProfileInput(handle = "files_$tag", displayName = "Ada"))
        val rnd = java.util.Random(42)
        val img = ByteArray(300_000).also { rnd.nextBytes(it) }

        // Upload with progress: several reports, the last one complete.
        val reports = java.util.concurrent.atomic.AtomicInteger()
        val last = java.util.concurrent.atomic.AtomicLong()
        val photo = ada.files.upload(img, filename = "photo.png", contentType = "image/png") { sent, total ->
            assertEquals(img.size.toLong(), total)
            reports.incrementAndGet()
            last.set(sent)
        }
        assertTrue(reports.get() > 1, "progress reports: ${reports.get()}")
        assertEquals(img.size.toLong(), last.get())
        assertEquals(img.size, photo.size)
        assertEquals("image/png", photo.contentType)
        assertEquals("photo.png", photo.filename)
        val sha = java.security.MessageDigest.getInstance("SHA-256").digest(img).joinToString("") { "%02x".format(it) }
        assertEquals(sha, photo.sha256)
        assertContentEquals(img, ada.files.download(photo.id))

        // Attach as avatar (update), read back, download through the record's url.
        val withAvatar = ada.profiles.update(profile.id, UpdateProfileInput(avatarID = Patch.Value(photo.id)))
        assertEquals(photo.id, withAvatar.avatar?.id)
        val read = ada.profiles.get(profile.id)
        assertEquals(photo.id, read?.avatar?.id)
        assertContentEquals(img, fetch(read!!.avatar!!.url))

        // A private post with two attachments (create), order kept.
        val clipBytes = ByteArray(200_000).also { rnd.nextBytes(it) }
        val tmp = java.io.File.createTempFile("clip", ".mp4")
        tmp.writeBytes(clipBytes)
        val clip = ada.files.upload(tmp, contentType = "video/mp4", filename = "clip.mp4") // streamed from disk
        tmp.delete()
        val post = ada.posts.create(CreatePostInput(authorID = profile.id, body = "files $tag", visibility = Visibility.PRIVATE, attachmentIDs = listOf(clip.id, photo.id)))
        assertEquals(listOf(clip.id, photo.id), post.attachments.map { it.id })
        assertContentEquals(clipBytes, fetch(ada.posts.get(post.id)!!.attachments[0].url))

        // Another signed-in user: reads Ada's profile (and so its avatar), but
        // not the private post, its video, or a url for it; cannot attach Ada's file.
        val bob = KilnClient(ada.config.url)
        bob.auth.signUp("files-bob-$tag@example.com", "correct horse battery $tag")
        val bobProfile = bob.profiles.create(CreateProfileInput(handle = "files_bob_$tag", displayName = "Bob"))
        assertContentEquals(img, fetch(bob.profiles.get(profile.id)!!.avatar!!.url))
        assertNull(bob.posts.get(post.id))
        assertNull(bob.files.get(clip.id))
        assertFailsWith<KilnException.NotFound> { bob.files.url(clip.id) }
        assertFailsWith<KilnException.NotFound> { bob.files.download(clip.id) }
        assertFailsWith<KilnException.NotFound> {
            bob.profiles.update(bobProfile.id, UpdateProfileInput(avatarID = Patch.Value(clip.id)))
        }

        // The multipart path (uploadFile): one request, the same checks.
        val dot = byteArrayOf(1, 2, 3, 4)
        val small = ada.files.uploadSmall(dot, filename = "dot.png", contentType = "image/png")
        assertEquals(4, small.size)
        assertContentEquals(dot, ada.files.download(small.id))
        val exeSmall = assertFailsWith<KilnException.Validation> {
            ada.files.uploadSmall(dot, filename = "a.exe", contentType = "application/x-msdownload")
        }
        assertEquals("UNSUPPORTED_CONTENT_TYPE", exeSmall.reason)

        // An image rendition: made by the server on the first GET; a size the
        // server does not allow is refused with its reason.
        val tinyPng = byteArrayOf(0x89.toByte(), 0x50.toByte(), 0x4e.toByte(), 0x47.toByte(), 0x0d.toByte(), 0x0a.toByte(), 0x1a.toByte(), 0x0a.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x0d.toByte(), 0x49.toByte(), 0x48.toByte(), 0x44.toByte(), 0x52.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x04.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x04.toByte(), 0x08.toByte(), 0x02.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x26.toByte(), 0x93.toByte(), 0x09.toByte(), 0x29.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x29.toByte(), 0x49.toByte(), 0x44.toByte(), 0x41.toByte(), 0x54.toByte(), 0x78.toByte(), 0x9c.toByte(), 0x0d.toByte(), 0xc7.toByte(), 0x31.toByte(), 0x01.toByte(), 0x00.toByte(), 0x00.toByte(), 0x0c.toByte(), 0xc2.toByte(), 0x30.toByte(), 0x84.toByte(), 0x21.toByte(), 0x0c.toByte(), 0x61.toByte(), 0x15.toByte(), 0x51.toByte(), 0x59.toByte(), 0x5b.toByte(), 0xbe.toByte(), 0x24.toByte(), 0xb1.toByte(), 0x71.toByte(), 0x91.toByte(), 0x98.toByte(), 0xd4.toByte(), 0xd6.toByte(), 0x55.toByte(), 0xfa.toByte(), 0x99.toByte(), 0x9d.toByte(), 0x9b.toByte(), 0xec.toByte(), 0x83.toByte(), 0xc5.toByte(), 0x21.toByte(), 0x78.toByte(), 0x17.toByte(), 0xf2.toByte(), 0x17.toByte(), 0xc1.toByte(), 0x69.toByte(), 0xaf.toByte(), 0x69.toByte(), 0x50.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x00.toByte(), 0x49.toByte(), 0x45.toByte(), 0x4e.toByte(), 0x44.toByte(), 0xae.toByte(), 0x42.toByte(), 0x60.toByte(), 0x82.toByte())
        val pic = ada.files.uploadSmall(tinyPng, filename = "tiny.png", contentType = "image/png")
        val thumb = fetch(ada.files.imageUrl(pic.id, width = 64, height = 64, fit = ImageFit.CONTAIN, format = ImageFormat.JPEG))
        assertContentEquals(byteArrayOf(0xFF.toByte(), 0xD8.toByte()), thumb.copyOfRange(0, 2))
        val badSize = assertFailsWith<KilnException.Validation> { ada.files.imageUrl(pic.id, width = 63, height = 63) }
        assertEquals("UNSUPPORTED_IMAGE_SIZE", badSize.reason)

        // An update replaces the list; Patch.Null detaches the avatar.
        val replaced = ada.posts.update(post.id, UpdatePostInput(attachmentIDs = listOf(photo.id, small.id)))
        assertEquals(listOf(photo.id, small.id), replaced.attachments.map { it.id })
        assertContentEquals(dot, fetch(replaced.attachments[1].url))
        assertNull(ada.profiles.update(profile.id, UpdateProfileInput(avatarID = Patch.Null)).avatar)
        assertNull(ada.profiles.get(profile.id)?.avatar)

        // Refused uploads: a type no File field accepts, a size over every limit.
        val exe = assertFailsWith<KilnException.Validation> {
            ada.files.upload(byteArrayOf(1, 2, 3), filename = "a.exe", contentType = "application/x-msdownload")
        }
        assertEquals("UNSUPPORTED_CONTENT_TYPE", exe.reason)
        val huge = java.io.File.createTempFile("huge", ".png")
        java.io.RandomAccessFile(huge, "rw").use { it.setLength(120_000_000) } // over KILN_MAX_UPLOAD_SIZE (100MB)
        val tooBig = assertFailsWith<KilnException.Validation> { ada.files.upload(huge, contentType = "image/png") }
        huge.delete()
        assertEquals("TOO_LARGE", tooBig.reason)

        // Refused attaches name the input field: a video as avatar, an image over the avatar's 5MB.
        val wrongType = assertFailsWith<KilnException.Validation> {
            ada.profiles.update(profile.id, UpdateProfileInput(avatarID = Patch.Value(clip.id)))
        }
        assertEquals("avatarID", wrongType.field)
        assertEquals("UNSUPPORTED_CONTENT_TYPE", wrongType.reason)
        val big = ada.files.upload(ByteArray(5_000_001), filename = "big.png", contentType = "image/png")
        val tooLarge = assertFailsWith<KilnException.Validation> {
            ada.profiles.update(profile.id, UpdateProfileInput(avatarID = Patch.Value(big.id)))
        }
        assertEquals("avatarID", tooLarge.field)
        assertEquals("TOO_LARGE", tooLarge.reason)
    }

    /** GETs a signed download url with a plain HTTP client (no session). */
    private fun fetch(url: String): ByteArray =
        okhttp3.OkHttpClient().newCall(okhttp3.Request.Builder().url(url).build()).execute().use { r ->
            assertTrue(r.isSuccessful, "GET $url: HTTP ${r.code}")
            r.body!!.bytes()
        }
}
