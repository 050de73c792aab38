// Validates FHIR R4 JSON resources with the `fhir` package (npm, R4 by
// default), an implementation independent of cpis. Reads one JSON document
// per line on stdin; prints one JSON line per document:
// {"valid": bool, "messages": [errors and warnings]}.
import readline from 'node:readline';
import { Fhir } from 'fhir';

const fhir = new Fhir();
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let result;
  try {
    const resource = JSON.parse(line);
    const outcome = fhir.validate(resource, { errorOnUnexpected: true });
    result = {
      valid: outcome.valid,
      messages: outcome.messages.filter((m) => m.severity !== 'information'),
    };
  } catch (error) {
    result = { valid: false, messages: [{ severity: 'error', message: String(error) }] };
  }
  console.log(JSON.stringify(result));
}
