// An independent OpenID Connect provider for cpis's tests: oauth2-mock-server
// (from the npm registry, not code of ours) with two keys (RS256 and ES256),
// plus a few test-only controls under /test/:
//   POST /test/mint    {claims, kid?, expiresIn?, header?} -> a token signed by the provider
//   POST /test/rotate  {alg}                              -> adds a new key, returns its kid
//   POST /test/next    {claims}                           -> claims merged into the tokens the
//                                                            token endpoint issues next
// Prints one JSON line {"issuer": ..., "keys": [...]} on stdout when ready.
import http from 'node:http';
import { OAuth2Server } from 'oauth2-mock-server';

const server = new OAuth2Server(undefined, undefined, undefined);
const rsa = await server.issuer.keys.generate('RS256');
const ec = await server.issuer.keys.generate('ES256');
let nextClaims = {};

server.service.on('beforeTokenSigning', (token) => {
  Object.assign(token.payload, nextClaims);
});

const readJson = (req) =>
  new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch (error) {
        reject(error);
      }
    });
  });

const control = async (req, res) => {
  const body = await readJson(req);
  if (req.url === '/test/mint') {
    const token = await server.issuer.buildToken({
      kid: body.kid,
      expiresIn: body.expiresIn ?? 3600,
      scopesOrTransform: (header, payload) => {
        Object.assign(header, body.header ?? {});
        Object.assign(payload, body.claims ?? {});
        for (const [name, value] of Object.entries(body.claims ?? {})) {
          if (value === null) delete payload[name];
        }
      },
    });
    res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
  } else if (req.url === '/test/rotate') {
    const key = await server.issuer.keys.generate(body.alg ?? 'RS256');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(key.kid);
  } else if (req.url === '/test/next') {
    nextClaims = body.claims ?? {};
    res.writeHead(204).end();
  } else {
    res.writeHead(404).end();
  }
};

const handler = server.service.requestHandler;
const httpServer = http.createServer((req, res) => {
  if (req.url.startsWith('/test/')) {
    control(req, res).catch((error) => res.writeHead(500).end(String(error)));
  } else {
    handler(req, res);
  }
});
httpServer.listen(0, '127.0.0.1', () => {
  const { port } = httpServer.address();
  server.issuer.url = `http://127.0.0.1:${port}`;
  console.log(JSON.stringify({ issuer: server.issuer.url, keys: [rsa.kid, ec.kid] }));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
