package io.kiln.sdk

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.serialization.KSerializer
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.put
import okhttp3.Request
import okhttp3.Response
import okhttp3.WebSocket
import okhttp3.WebSocketListener

private sealed class WsEvent {
    object Open : WsEvent()
    class Text(val text: String) : WsEvent()
    class Closed(val code: Int, val reason: String) : WsEvent()
    class Failure(val error: Throwable) : WsEvent()
}

/**
 * Subscriptions over graphql-transport-ws. Each subscription has its own
 * connection; when it drops (network, server restart, expired token) the
 * flow reconnects with backoff, signs the connection with a fresh access
 * token and subscribes again. Events published while disconnected are not
 * replayed: refetch with a list call after [onReconnect] if they matter.
 */
class Subscriptions internal constructor(private val t: KilnTransport) {
    /** Called after a connection is re-established (not for the first one). */
    @Volatile var onReconnect: (() -> Unit)? = null

    /** Maximum delay between reconnect attempts. */
    @Volatile var maxBackoffMillis: Long = 30_000

    /** Subscribes to [document] and decodes `data[field]` of every event. */
    fun <T> subscribe(document: String, variables: JsonObject, field: String, serializer: KSerializer<T>): Flow<T> =
        raw(document, variables) { decodeField(it, field, serializer) }

    /** Subscribes to [document] and decodes the whole `data` of every event. */
    fun <T> subscribeData(document: String, variables: JsonObject, serializer: KSerializer<T>): Flow<T> =
        raw(document, variables) {
            try {
                KilnJson.decodeFromJsonElement(serializer, it)
            } catch (e: Exception) {
                throw KilnException.Decoding("cannot decode event: ${e.message}", e)
            }
        }

    private fun <T> raw(document: String, variables: JsonObject, decode: (JsonObject) -> T): Flow<T> = flow {
        var attempt = 0
        var connectedBefore = false
        while (true) {
            val events = Channel<WsEvent>(Channel.UNLIMITED)
            val token = t.accessToken()
            val request = Request.Builder().url(t.webSocketUrl).header("Sec-WebSocket-Protocol", "graphql-transport-ws").build()
            val ws = t.config.httpClient.newWebSocket(request, object : WebSocketListener() {
                override fun onOpen(webSocket: WebSocket, response: Response) { events.trySend(WsEvent.Open) }
                override fun onMessage(webSocket: WebSocket, text: String) { events.trySend(WsEvent.Text(text)) }
                override fun onClosing(webSocket: WebSocket, code: Int, reason: String) {
                    events.trySend(WsEvent.Closed(code, reason)); webSocket.close(1000, null)
                }
                override fun onClosed(webSocket: WebSocket, code: Int, reason: String) { events.trySend(WsEvent.Closed(code, reason)) }
                override fun onFailure(webSocket: WebSocket, t: Throwable, response: Response?) { events.trySend(WsEvent.Failure(t)) }
            })
            var authRejected = false
            try {
                loop@ for (ev in events) {
                    when (ev) {
                        is WsEvent.Open -> ws.send(buildJsonObject {
                            put("type", "connection_init")
                            put("payload", buildJsonObject {
                                if (token != null) put("Authorization", "Bearer $token")
                                for ((k, v) in t.config.headers) put(k, v)
                            })
                        }.toString())
                        is WsEvent.Text -> {
                            val msg = KilnJson.parseToJsonElement(ev.text).jsonObject
                            when ((msg["type"] as? JsonPrimitive)?.content) {
                                "connection_ack" -> {
                                    if (connectedBefore) onReconnect?.invoke()
                                    connectedBefore = true
                                    attempt = 0
                                    ws.send(buildJsonObject {
                                        put("id", "1")
                                        put("type", "subscribe")
                                        put("payload", buildJsonObject { put("query", document); put("variables", variables) })
                                    }.toString())
                                }
                                "ping" -> ws.send("{\"type\":\"pong\"}")
                                "next" -> {
                                    val payload = msg["payload"]!!.jsonObject
                                    val errors = payload["errors"]
                                    if (errors is JsonArray && errors.isNotEmpty()) throw KilnTransport.errorFrom(errors[0].jsonObject)
                                    emit(decode(payload["data"]!!.jsonObject))
                                }
                                "error" -> {
                                    val errors = msg["payload"] as? JsonArray
                                    throw if (errors != null && errors.isNotEmpty()) KilnTransport.errorFrom(errors[0].jsonObject)
                                    else KilnException.Server(null, "subscription error")
                                }
                                "complete" -> return@flow
                            }
                        }
                        is WsEvent.Closed -> {
                            authRejected = ev.code == 4401 || ev.code == 4403
                            break@loop
                        }
                        is WsEvent.Failure -> break@loop
                    }
                }
            } finally {
                ws.close(1000, null)
                events.close()
            }
            if (authRejected && token != null) {
                t.refresh(stale = token) ?: throw KilnException.Unauthenticated("the session ended")
            }
            delay(minOf(maxBackoffMillis, 250L shl minOf(attempt, 7)))
            attempt++
        }
    }
}
