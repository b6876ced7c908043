import t from 'tap'
import { type ClusterNode, clusterSkip, isRun, Peer, startProcessCluster, storm } from './fixtures/cluster.js'
import { sleep, until } from './fixtures/timing.js'
import { deployNginxConf, nginxSkip, startNginx } from './fixtures/nginx.js'
import { sampleValue, scrape } from './fixtures/prometheus.js'

// deploy/nginx.conf itself, its upstream pointed at real nodes: clients that nginx spreads over the
// nodes (no sticky sessions) share one room. Runs where an nginx binary is installed.
const skip = clusterSkip() || nginxSkip

t.test('deploy/nginx.conf: clients spread over the nodes by nginx, without stickiness, share a room', { skip }, async (t) => {
  const cluster = await startProcessCluster(t, { nodes: 2 })
  const upstreams = cluster.nodes.map((node) => `    server ${new URL(node.httpUrl).host} max_fails=1 fail_timeout=5s;`).join('\n')
  const site = deployNginxConf()
    .replace(/^ {4}server chat-node-\d:3000[^\n]*\n/gm, '')
    .replace('    keepalive 32;', `${upstreams}\n    keepalive 32;`)
  t.notMatch(site, /chat-node-/, 'every example upstream was replaced')
  const { front } = await startNginx(t, (port) => site.replace('listen 80;', `listen 127.0.0.1:${port};`))

  // A stand-in node whose URLs are nginx's: Peer connects through it.
  const viaNginx = { httpUrl: front, wsUrl: `${front.replace(/^http/, 'ws')}/ws`, name: 'nginx' } as unknown as ClusterNode
  const ids = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6']
  const peers: Peer[] = []
  for (const id of ids) peers.push(await Peer.connect(cluster, viaNginx, id))
  const perNode = await Promise.all(cluster.nodes.map(async (node) => sampleValue(await scrape(node.httpUrl), 'chat_sockets_open')))
  t.ok(perNode.every((count) => count > 0), `nginx spread the sockets over both nodes: ${perNode.join(' + ')}`)

  const [owner, ...others] = peers as [Peer, ...Peer[]]
  const roomId = await owner.createRoom('behind-nginx', others)
  const sent = await Promise.all(peers.slice(0, 3).map((peer) => storm(peer, roomId, { count: 10 })))
  t.same(sent.flat().filter((o) => !o.ok), [], 'every send through nginx is acked')
  const listeners = peers.slice(3)
  await until('every listener to get all 30', () => listeners.every((peer) => peer.lastSeq(roomId) >= 30), { timeoutMs: 10000, everyMs: 25 })
  await sleep(100)
  for (const peer of listeners) t.ok(isRun(peer.seqs(roomId), 1, 30), `${peer.userId}: 1..30 in order, once`)

  // A socket idle past nginx's timeouts would be cut; the server's pings keep it open (heartbeatMs 25 s
  // against proxy_read_timeout 75 s) — not waited for here, only the REST side through nginx.
  const rest = await fetch(`${front}/api/rooms/${roomId}/messages?limit=5`, { headers: { authorization: `Bearer ${cluster.token('u1')}` } })
  t.equal(rest.status, 200, 'REST goes through nginx too')
  t.equal((await fetch(`${front}/metrics`)).status, 403, '/metrics is not exposed through nginx')
  for (const peer of peers) peer.close()
})
