import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';

const ra = (spec: string, namespace = 'foo') => doc('security.istio.io/v1', 'RequestAuthentication', 'jwt', spec, namespace);
/** A JWT rule under a selector, with `extra` lines appended to the rule. */
const rule = (extra: string) => ra(`selector:\n  matchLabels:\n    app: httpbin\njwtRules:\n- issuer: testing@secure.istio.io\n${extra.trim().split('\n').map((l) => `  ${l}`).join('\n')}`);

const JWKS = '{"keys":[{"e":"AQAB","kid":"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ","kty":"RSA","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}';

/** Public moduli of a 1024-bit and a 2048-bit RSA key (base64url). */
const RSA_1024_N = 'qPNXiAB31X49n-1eGD161Z_RhLOcU0XnEJ2nWDLDgQ9huLe7BV4WPW0JC3G64fh1iBHuTkVnjsTnN6qu_s9xDMXUFq0wI28rXJQHAck2nF2Ugx_kamCU979CnanhjjK5Clhdi7DoAM-oag6jB_6iLiilMLyR5kfgO5muoUXpHb8';
const RSA_2048_N = 'uQ_FDk3YrsL2lyhtniVhjVWLoMhDsNq4oTGwVWoZRnE7DcEWML2kU8Wyay4oVGhqFxkMy6efKEdsaOEp3BRaIGSsQTdoNk2H93AcQTu2IM-PwEEvPoKLFoVZGoTMSc0ZjBTJHjfJvvMdWcAuNYEMLb_xRJLmMdG6HQUZ_anu0YxpA5WciJNLzgRTZ4sIYsPOPz3oFaYVl8qbCfY1R6LofF7ua5POdHipi8KGjAH3EtK9JSGZ_vVnSVkCA2S19jBBPR9gmrMKC4mwAWVW4EeuqUnEPvmWH2FUuBV-3NKpxZ7rrnXQKXigvkrJ-OapiIM6FFswGIrZYCOxS8mcTlTUHQ';

describe('RequestAuthentication validation', () => {
  const valid: { name: string; yaml: string }[] = [
    { name: 'empty spec', yaml: ra('{}') },
    {
      name: 'the Istio task page rule (jwksUri)',
      yaml: ra('selector:\n  matchLabels:\n    istio: ingressgateway\njwtRules:\n- issuer: "testing@secure.istio.io"\n  jwksUri: "https://raw.githubusercontent.com/istio/istio/release-1.28/security/tools/jwt/samples/jwks.json"'),
    },
    { name: 'an inline JWKS', yaml: rule(`jwks: '${JWKS}'`) },
    {
      name: 'every JWT rule field',
      yaml: rule(
        [
          'audiences: [app, api]',
          'jwksUri: http://jwks.default.svc:8000/jwks.json',
          'fromHeaders:',
          '- name: x-jwt-assertion',
          '- name: Authorization',
          '  prefix: "Bearer "',
          'fromParams: [my_token]',
          'fromCookies: [session]',
          'outputPayloadToHeader: x-jwt-payload',
          'forwardOriginalToken: true',
          'outputClaimToHeaders:',
          '- header: x-jwt-claim-group',
          '  claim: group',
          '- header: x-jwt-nested',
          '  claim: a.b',
          'timeout: 10s',
          'spaceDelimitedClaims: [custom_scope]',
        ].join('\n'),
      ),
    },
    { name: 'jwksUri without an issuer (Istio: either is enough)', yaml: ra('jwtRules:\n- jwksUri: https://example.com/.well-known/jwks.json') },
    { name: 'jwks_uri, the spelling Istio\'s CRD also accepts', yaml: ra('jwtRules:\n- issuer: https://a.example.com\n  jwks_uri: https://a.example.com/keys') },
    { name: 'presence REQUIRED', yaml: rule('jwksUri: https://example.com/keys\npresence: REQUIRED') },
    {
      name: 'two issuers',
      yaml: ra('jwtRules:\n- issuer: https://a.example.com\n- issuer: https://b.example.com\n  jwksUri: https://b.example.com/keys'),
    },
    {
      name: 'EC, oct and OKP keys',
      yaml: rule(`jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83","y":"x_F"},{"kty":"OKP","crv":"Ed25519","x":"11q"}]}'`),
    },
  ];
  for (const c of valid) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('keeps the typed rule as written', () => {
    const { resources } = validateYaml(rule('fromHeaders:\n- name: Authorization\n  prefix: "Bearer "\ntimeout: 1.5s'));
    assert.deepEqual(resources[0]?.spec, {
      selector: { matchLabels: { app: 'httpbin' } },
      jwtRules: [{ issuer: 'testing@secure.istio.io', fromHeaders: [{ name: 'Authorization', prefix: 'Bearer ' }], timeout: '1.5s' }],
    });
  });

  const invalid: { name: string; yaml: string; error: RegExp }[] = [
    { name: 'jwtRules not a list', yaml: ra('jwtRules:\n  issuer: a'), error: /spec\.jwtRules: must be a list/ },
    { name: 'no issuer and no jwksUri', yaml: ra(`jwtRules:\n- jwks: '${JWKS}'`), error: /spec\.jwtRules\[0\]\.issuer: is required unless jwksUri is set/ },
    { name: 'empty issuer', yaml: ra('jwtRules:\n- issuer: ""\n  jwksUri: https://example.com/keys'), error: /spec\.jwtRules\[0\]\.issuer: must not be empty/ },
    { name: 'unknown rule field', yaml: rule('jwksUrl: https://example.com/keys'), error: /spec\.jwtRules\[0\]\.jwksUrl: unknown field "jwksUrl" \(did you mean "jwksUri"\?\)/ },
    { name: 'jwks_uri and jwksUri together', yaml: rule('jwks_uri: https://example.com/a\njwksUri: https://example.com/b'), error: /jwtRules\[0\]\.jwks_uri: "jwks_uri" is another spelling of "jwksUri"; give only one of them/ },
    { name: 'an unknown presence', yaml: rule('presence: MANDATORY'), error: /jwtRules\[0\]\.presence: must be one of OPTIONAL, REQUIRED/ },
    { name: 'a targetRef to another namespace', yaml: ra('targetRef:\n  group: ""\n  kind: Service\n  name: foo\n  namespace: bar'), error: /spec\.targetRef\.namespace: must not be set: cross-namespace references are not supported/ },
    { name: 'a targetRef to a kind Istio does not allow', yaml: ra('targetRef:\n  group: ""\n  kind: Serv_ice\n  name: foo'), error: /spec\.targetRef: targetRef must be to one of core\/Service, networking\.istio\.io\/ServiceEntry, gateway\.networking\.k8s\.io\/Gateway, gateway\.networking\.k8s\.io\/GatewayClass; got core\/Serv_ice/ },
    { name: 'a targetRef to a Gateway without its group', yaml: ra('targetRefs:\n- kind: Gateway\n  name: gw'), error: /spec\.targetRefs\[0\]: targetRef must be to one of/ },
    { name: 'a dry-run annotation (AuthorizationPolicy only)', yaml: ra('jwtRules:\n- issuer: https://a.example.com').replace('  namespace: foo', '  namespace: foo\n  annotations: {istio.io/dry-run: "true"}'), error: /metadata\.annotations\["istio\.io\/dry-run"\]: istio\.io\/dry-run is supported on AuthorizationPolicy only/ },
    { name: 'jwksUri not a URL', yaml: rule('jwksUri: example.com/keys'), error: /spec\.jwtRules\[0\]\.jwksUri: "example\.com\/keys" is not a URL/ },
    { name: 'jwksUri with another scheme', yaml: rule('jwksUri: file:///etc/jwks.json'), error: /jwksUri: URI scheme "file" is not supported; jwksUri must be an http:\/\/ or https:\/\/ URL/ },
    { name: 'jwksUri and jwks together', yaml: rule(`jwksUri: https://example.com/keys\njwks: '${JWKS}'`), error: /spec\.jwtRules\[0\]: only one of jwksUri, jwks may be set/ },
    { name: 'jwks not JSON', yaml: rule('jwks: "{keys: []"'), error: /spec\.jwtRules\[0\]\.jwks: jwks is not valid JSON/ },
    { name: 'jwks a JSON list', yaml: rule(`jwks: '[]'`), error: /jwks: jwks must be a JSON object with a "keys" array/ },
    { name: 'jwks a single JWK', yaml: rule(`jwks: '{"kty":"RSA","n":"x","e":"AQAB"}'`), error: /jwks: jwks must have a "keys" array/ },
    { name: 'jwks with no keys', yaml: rule(`jwks: '{"keys":[]}'`), error: /jwks: jwks "keys" must not be empty/ },
    { name: 'jwks key not an object', yaml: rule(`jwks: '{"keys":["abc"]}'`), error: /jwks: jwks keys\[0\] must be a JSON object/ },
    { name: 'jwks key without kty', yaml: rule(`jwks: '{"keys":[{"n":"x","e":"AQAB"}]}'`), error: /jwks: jwks keys\[0\] has no "kty"/ },
    { name: 'jwks key with an unknown kty', yaml: rule(`jwks: '{"keys":[{"kty":"DSA"}]}'`), error: /jwks keys\[0\] has kty "DSA"; supported: RSA, EC, oct, OKP/ },
    { name: 'jwks key with kty named like an Object property', yaml: rule(`jwks: '{"keys":[{"kty":"constructor"}]}'`), error: /jwks keys\[0\] has kty "constructor"/ },
    { name: 'jwks RSA key without modulus', yaml: rule(`jwks: '{"keys":[{"kty":"RSA","e":"AQAB"}]}'`), error: /jwks keys\[0\] \(kty RSA\) is missing "n"/ },
    { name: 'jwks not a string', yaml: rule('jwks:\n  keys: []'), error: /spec\.jwtRules\[0\]\.jwks: must be a string, got an object/ },
    { name: 'empty audience', yaml: rule('audiences: [""]'), error: /spec\.jwtRules\[0\]\.audiences\[0\]: must not be empty/ },
    { name: 'audience not a string', yaml: rule('audiences: [{a: b}]'), error: /audiences\[0\]: must be a string/ },
    { name: 'fromHeaders without name', yaml: rule('fromHeaders:\n- prefix: "Bearer "'), error: /spec\.jwtRules\[0\]\.fromHeaders\[0\]\.name: is required/ },
    { name: 'fromHeaders with an invalid name', yaml: rule('fromHeaders:\n- name: "x jwt"'), error: /fromHeaders\[0\]\.name: invalid header name "x jwt"/ },
    { name: 'fromHeaders with a pseudo-header', yaml: rule('fromHeaders:\n- name: ":authority"'), error: /fromHeaders\[0\]\.name: pseudo-header ":authority" is not allowed here/ },
    { name: 'fromHeaders with an empty name', yaml: rule('fromHeaders:\n- name: ""'), error: /fromHeaders\[0\]\.name: header name must not be empty/ },
    { name: 'fromHeaders prefix not a string', yaml: rule('fromHeaders:\n- name: a\n  prefix: 1'), error: /fromHeaders\[0\]\.prefix: must be a string/ },
    { name: 'empty fromParams entry', yaml: rule('fromParams: [""]'), error: /spec\.jwtRules\[0\]\.fromParams\[0\]: must not be empty/ },
    { name: 'empty fromCookies entry', yaml: rule('fromCookies: [""]'), error: /spec\.jwtRules\[0\]\.fromCookies\[0\]: must not be empty/ },
    { name: 'invalid outputPayloadToHeader', yaml: rule('outputPayloadToHeader: "x/payload"'), error: /outputPayloadToHeader: invalid header name "x\/payload"/ },
    { name: 'forwardOriginalToken not a boolean', yaml: rule('forwardOriginalToken: "yes"'), error: /forwardOriginalToken: must be true or false/ },
    { name: 'outputClaimToHeaders without claim', yaml: rule('outputClaimToHeaders:\n- header: x-sub'), error: /outputClaimToHeaders\[0\]\.claim: is required/ },
    { name: 'outputClaimToHeaders with an empty claim', yaml: rule('outputClaimToHeaders:\n- header: x-sub\n  claim: ""'), error: /outputClaimToHeaders\[0\]\.claim: must not be empty/ },
    { name: 'outputClaimToHeaders without header', yaml: rule('outputClaimToHeaders:\n- claim: sub'), error: /outputClaimToHeaders\[0\]\.header: is required/ },
    { name: 'outputClaimToHeaders to a pseudo-header', yaml: rule('outputClaimToHeaders:\n- header: ":path"\n  claim: sub'), error: /outputClaimToHeaders\[0\]\.header: pseudo-header ":path" is not allowed here/ },
    { name: 'outputClaimToHeaders to an invalid header', yaml: rule('outputClaimToHeaders:\n- header: "x sub"\n  claim: sub'), error: /outputClaimToHeaders\[0\]\.header: invalid header name/ },
    { name: 'timeout below 1ms', yaml: rule('timeout: 100us'), error: /spec\.jwtRules\[0\]\.timeout: duration must be >= 1ms, got "100us"/ },
    { name: 'timeout zero', yaml: rule('timeout: 0s'), error: /timeout: duration must be >= 1ms/ },
    { name: 'timeout not a duration', yaml: rule('timeout: 5'), error: /timeout: must be a string/ },
    { name: 'timeout without unit', yaml: rule('timeout: "5"'), error: /timeout: invalid duration "5"/ },
    { name: 'empty spaceDelimitedClaims entry', yaml: rule('spaceDelimitedClaims: [""]'), error: /spaceDelimitedClaims\[0\]: must not be empty/ },
    {
      name: 'selector and targetRefs together',
      yaml: ra('selector:\n  matchLabels:\n    app: a\ntargetRefs:\n- kind: Gateway\n  group: gateway.networking.k8s.io\n  name: gw'),
      error: /spec: only one of selector, targetRef, targetRefs may be set, got selector and targetRefs/,
    },
    { name: 'targetRef without name', yaml: ra('targetRef:\n  kind: Gateway'), error: /spec\.targetRef\.name: is required/ },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0);
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  const warned: { name: string; yaml: string; warning: RegExp }[] = [
    {
      name: 'duplicate issuers',
      yaml: ra('jwtRules:\n- issuer: https://a.example.com\n- issuer: https://b.example.com\n- issuer: https://a.example.com\n  jwksUri: https://a.example.com/keys'),
      warning: /spec\.jwtRules\[2\]\.issuer: issuer "https:\/\/a\.example\.com" is also used by jwtRules\[0\]/,
    },
    {
      name: 'targetRefs',
      yaml: ra('targetRefs:\n- kind: Gateway\n  group: gateway.networking.k8s.io\n  name: gw\njwtRules:\n- issuer: https://a.example.com'),
      warning: /spec\.targetRefs: not supported by meshlet: spec\.targetRefs; meshlet runs inside workloads; use selector/,
    },
    {
      name: 'targetRef',
      yaml: ra('targetRef:\n  kind: Gateway\n  group: gateway.networking.k8s.io\n  name: gw'),
      warning: /not supported by meshlet: spec\.targetRef; meshlet runs inside workloads; use selector/,
    },
    {
      name: 'an issuer that OIDC discovery cannot use',
      yaml: ra('jwtRules:\n- issuer: testing@secure.istio.io'),
      warning: /spec\.jwtRules\[0\]\.issuer: no jwksUri or jwks: .*"testing@secure\.istio\.io" is not an http\(s\) URL; set jwksUri or jwks/,
    },
    { name: 'a selector without labels', yaml: ra('selector: {}'), warning: /spec\.selector: selector has no matchLabels/ },
    { name: 'a shared secret in an inline JWKS (Istio warns)', yaml: rule(`jwks: '{"keys":[{"kty":"oct","k":"GawgguFyGrWKav7AX4VKUg"}]}'`), warning: /jwtRules\[0\]\.jwks: jwks key at index 0 contains private key material/ },
    { name: 'a private RSA key in an inline JWKS (Istio warns)', yaml: rule(`jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83","y":"x_F"},{"kty":"RSA","n":"xAE","e":"AQAB","d":"secret"}]}'`), warning: /jwks key at index 1 contains private key material/ },
    // A key Envoy verifies with and meshlet does not: every token signed with it answered 401 "Jwt verification fails", with nothing saying why.
    {
      name: 'an RSA key shorter than 2048 bits in an inline JWKS',
      yaml: rule(`jwks: '{"keys":[{"kty":"RSA","n":"${RSA_2048_N}","e":"AQAB"},{"kty":"RSA","kid":"small","n":"${RSA_1024_N}","e":"AQAB"}]}'`),
      warning: /jwtRules\[0\]\.jwks: jwks key at index 1 is a 1024-bit RSA key: meshlet does not verify with RSA keys shorter than 2048 bits \(Envoy does\), so tokens signed with it fail with "Jwt verification fails"/,
    },
  ];
  it('says nothing about a 2048-bit RSA key', () => {
    const { errors, warnings } = validateYaml(rule(`jwks: '{"keys":[{"kty":"RSA","n":"${RSA_2048_N}","e":"AQAB"}]}'`));
    assert.deepEqual([errors, warnings], [[], []]);
  });
  for (const c of warned) {
    it(`warns about ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => c.warning.test(w)), `expected ${c.warning} in:\n${warnings.join('\n')}`);
    });
  }
});
