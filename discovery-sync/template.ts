/**
 * URL templates (docs/kv-schema.md, docs/deploy.md): `{scheme}`, `{ip}`, `{port}`, `{pod}`,
 * `{node}`, `{nodePort}`, `{zone}`, `{namespace}`, `{service}`. Pure.
 */

const PLACEHOLDERS = [
  "scheme",
  "ip",
  "port",
  "pod",
  "node",
  "nodePort",
  "zone",
  "namespace",
  "service",
] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type TemplateValues = Partial<Record<Placeholder, string | number>>;

const TOKEN = /\{([A-Za-z]+)\}/g;

/** Placeholders a template uses, or the unknown ones as an error. */
export function placeholdersOf(template: string): { used: Set<Placeholder>; unknown: string[] } {
  const used = new Set<Placeholder>();
  const unknown: string[] = [];
  for (const [, name] of template.matchAll(TOKEN)) {
    if ((PLACEHOLDERS as readonly string[]).includes(name as string)) used.add(name as Placeholder);
    else unknown.push(name as string);
  }
  return { used, unknown };
}

/** The rendered URL, or the placeholder that has no value for this endpoint. */
export function render(
  template: string,
  values: TemplateValues,
): { url: string } | { missing: Placeholder } {
  let missing: Placeholder | undefined;
  const url = template.replace(TOKEN, (whole, name: string) => {
    const value = values[name as Placeholder];
    if (value === undefined || value === "") {
      missing ??= name as Placeholder;
      return whole;
    }
    return String(value);
  });
  return missing ? { missing } : { url };
}

/** `{ip}` of an address: IPv6 in brackets, IPv4 and FQDN as they are. */
export function ipValue(address: string, addressType: string): string {
  return addressType === "IPv6" && !address.startsWith("[") ? `[${address}]` : address;
}

export function needsNodes(template: string): boolean {
  const { used } = placeholdersOf(template);
  return used.has("node") || used.has("nodePort");
}
