'use strict';
'require view';
'require rpc';
'require poll';
'require ui';
'require uci';

// The node at a glance, refreshed every poll interval (5 s): the service,
// the registration, what needs the admin, the node's neighbourhood drawn as
// a picture, and its tunnels, Babel neighbours, routes and LAN nodes. Every
// figure comes from the daemon (`re6st-lite rpcd`, object luci.re6st).

// expect: an error status (a number) becomes {}.
const callStatus = rpc.declare({ object: 'luci.re6st', method: 'status', expect: { '': {} } });
const callInfo = rpc.declare({ object: 'luci.re6st', method: 'info', expect: { '': {} } });
const callRegistration = rpc.declare({ object: 'luci.re6st', method: 'registration', expect: { '': {} } });
const callRenew = rpc.declare({ object: 'luci.re6st', method: 'renew', expect: { '': {} } });
const callServices = rpc.declare({
	object: 'service', method: 'list', params: [ 'name' ], expect: { '': {} }
});
const callInit = rpc.declare({
	object: 'rc', method: 'init', params: [ 'name', 'action' ], reject: true
});

const DAY = 86400;
const STEPS = {
	ca: _('Fetching the network\'s CA certificate'),
	key: _('Generating the key (minutes on a small router)'),
	certificate: _('Asking the registry for a certificate'),
	config: _('Fetching the network configuration')
};

function bytes(n) {
	const units = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ];
	let i = 0;
	for (n = +n || 0; n >= 1024 && i < units.length - 1; i++)
		n /= 1024;
	return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

function duration(s) {
	s = Math.max(0, Math.floor(+s || 0));
	const d = Math.floor(s / DAY), h = Math.floor(s % DAY / 3600),
		m = Math.floor(s % 3600 / 60);
	if (d) return _('%dd %dh').format(d, h);
	if (h) return _('%dh %dm').format(h, m);
	if (m) return _('%dm %ds').format(m, s % 60);
	return _('%ds').format(s);
}

function badge(text, kind) {
	return E('span', { 'class': 'label ' + (kind || '') }, [ text ]);
}

function dash(v) {
	return (v === null || v === undefined || v === '') ? '-' : String(v);
}

// The node's NAT situation and port mapping (status `nat`).
function natLine(n) {
	const situation = {
		unknown: _('unknown yet'), public: _('none (public address)'), nat: _('behind a NAT'),
		cone: _('behind a NAT that keeps ports (hole punching works)'),
		symmetric: _('behind a symmetric NAT (no hole punching)')
	}[n.situation] || dash(n.situation);
	const parts = [ situation ];
	if (n.external && n.situation !== 'public')
		parts.push(_('seen at %s').format(n.external));
	if (n.mapping)
		parts.push(_('%s port mapping %s').format(n.mapping.protocol.toUpperCase(), n.mapping.external));
	else if (n.mapping_error)
		parts.push(_('no port mapping: %s').format(n.mapping_error));
	return parts.join('; ');
}

function table(headers, rows, empty) {
	return E('table', { 'class': 'table cbi-section-table' }, [
		E('tr', { 'class': 'tr table-titles' },
			headers.map((h) => E('th', { 'class': 'th' }, [ h ]))),
		...(rows.length ? rows.map((r) => E('tr', { 'class': 'tr cbi-rowstyle-1' },
			r.map((c, i) => E('td', { 'class': 'td', 'data-title': headers[i] },
				[ c instanceof Node ? c : dash(c) ])))) :
			[ E('tr', { 'class': 'tr placeholder' }, [
				E('td', { 'class': 'td', 'colspan': headers.length }, [ E('em', {}, [ empty ]) ])
			]) ])
	]);
}

function card(title, rows) {
	return E('div', { 'class': 'cbi-section' }, [
		E('h3', {}, [ title ]),
		E('table', { 'class': 'table' }, rows.filter((r) => r).map((r) =>
			E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'style': 'width:33%' }, [ r[0] ]),
				E('td', { 'class': 'td left' }, [ r[1] instanceof Node ? r[1] : dash(r[1]) ])
			])))
	]);
}

// running / registering / stopped, from procd's instances of the service.
function serviceState(services) {
	const inst = (services && services.re6st && services.re6st.instances) || {};
	if (inst.node && inst.node.running) return 'running';
	if (inst.register && inst.register.running) return 'registering';
	return 'stopped';
}

// Whether the firewall lets the tunnels in from wan: the package's rule
// (Allow-re6st-tunnel), enabled, on the node's port, or any enabled rule
// accepting UDP to that port from wan.
function tunnelPortOpen(port) {
	return uci.sections('firewall', 'rule').some((r) =>
		r.src === 'wan' && r.target === 'ACCEPT' && r.enabled !== '0' &&
		(!r.proto || /\budp\b|\ball\b/.test(String(r.proto))) &&
		String(r.dest_port || '').split(/[\s,]+/).includes(String(port)));
}

// What needs the admin, most urgent first: [severity, text].
function health(st, info, service) {
	const out = [];
	const now = Date.now() / 1000;
	if (info.state === 'broken')
		out.push([ 'danger', _('The state directory is unusable: %s').format(info.error || '') ]);
	else if (info.state === 'expired')
		out.push([ 'danger', _('The certificate has expired: peers refuse it until it is renewed.') ]);
	else if (info.not_after && info.not_after - now < 30 * DAY)
		out.push([ 'warning', _('The certificate expires in %d days.').format(Math.max(0, Math.floor((info.not_after - now) / DAY))) ]);
	if (info.prefix && +info.prefix.split('/')[1] > 64)
		out.push([ 'warning', _('The prefix %s is longer than /64: LAN hosts get no address by SLAAC.').format(info.prefix) ]);
	if (service === 'running' && !st.running)
		out.push([ 'danger', _('The service runs but the node does not answer.') ]);
	if (st.running) {
		const s = st.status;
		if (s.registry && s.registry.last_error)
			out.push([ 'warning', _('The registry is not answering: %s').format(s.registry.last_error) ]);
		if (!tunnelPortOpen(s.port))
			out.push([ 'warning', _('UDP port %s is not open on wan (firewall rule Allow-re6st-tunnel missing or disabled): other nodes cannot connect to this one.').format(s.port) ]);
		if (!(s.tunnels || []).some((t) => t.state === 'up'))
			out.push([ 'warning', _('No tunnel is up: check the internet connection and that UDP port %s is open on wan.').format(s.port) ]);
	}
	return out;
}

// This node in the middle, its tunnel peers and LAN nodes around it, each
// edge labelled with its round-trip time.
function neighbourhood(s) {
	const NS = 'http://www.w3.org/2000/svg';
	const svg = (tag, attrs, children) => {
		const el = document.createElementNS(NS, tag);
		for (const k in attrs) el.setAttribute(k, attrs[k]);
		(children || []).forEach((c) => el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c));
		return el;
	};
	const nodes = (s.tunnels || []).filter((t) => t.peer).map((t) => ({
		label: t.peer, sub: t.state, rtt: t.rtt_ms, up: t.state === 'up', kind: t.direction
	}));
	(s.babel_interfaces || []).forEach((l) => (l.nodes || []).forEach((n) => nodes.push({
		label: n.prefix || n.address, sub: l.interface, rtt: null, up: true, kind: 'lan'
	})));
	const W = 640, H = 360, cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 50;
	const items = [];
	nodes.forEach((n, i) => {
		const a = 2 * Math.PI * i / nodes.length - Math.PI / 2;
		const x = cx + R * Math.cos(a) * 1.45, y = cy + R * Math.sin(a);
		const colour = n.kind === 'lan' ? '#5b8' : (n.up ? '#48c' : '#bbb');
		items.push(svg('line', { x1: cx, y1: cy, x2: x, y2: y, stroke: colour,
			'stroke-width': 2, 'stroke-dasharray': n.up ? '' : '4 3' }));
		if (n.rtt !== null && n.rtt !== undefined)
			items.push(svg('text', { x: (cx + x) / 2, y: (cy + y) / 2 - 4, 'font-size': 11,
				'text-anchor': 'middle', fill: '#555' }, [ n.rtt.toFixed(1) + ' ms' ]));
		items.push(svg('circle', { cx: x, cy: y, r: 7, fill: colour }));
		items.push(svg('text', { x: x, y: y + 20, 'font-size': 11, 'text-anchor': 'middle' },
			[ n.label ]));
		items.push(svg('text', { x: x, y: y + 33, 'font-size': 10, 'text-anchor': 'middle',
			fill: '#888' }, [ n.kind === 'lan' ? _('LAN %s').format(n.sub) : n.sub ]));
	});
	items.push(svg('circle', { cx: cx, cy: cy, r: 12, fill: '#e80' }));
	items.push(svg('text', { x: cx, y: cy + 28, 'font-size': 12, 'font-weight': 'bold',
		'text-anchor': 'middle' }, [ s.prefix || _('this node') ]));
	if (!nodes.length)
		items.push(svg('text', { x: cx, y: cy - 24, 'font-size': 12, 'text-anchor': 'middle',
			fill: '#888' }, [ _('no neighbour yet') ]));
	return svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%',
		style: 'max-width:' + W + 'px', role: 'img', 'aria-label': _('Neighbourhood') }, items);
}

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(callStatus(), {}),
			L.resolveDefault(callInfo(), {}),
			L.resolveDefault(callRegistration(), {}),
			L.resolveDefault(callServices('re6st'), {}),
			L.resolveDefault(uci.load('firewall'), null)
		]);
	},

	serviceAction: function(action) {
		return callInit('re6st', action).then(() => this.refresh(),
			(e) => ui.addNotification(null, E('p', {}, [ _('%s failed: %s').format(action, e.message) ]), 'danger'));
	},

	renew: function() {
		return callRenew().then((r) => ui.addNotification(null, E('p', {},
			[ r.ok ? _('The node is asking the registry to renew its certificate.') :
				_('The node could not be asked: %s').format(r.error || '') ]), r.ok ? 'info' : 'danger'));
	},

	refresh: function() {
		return this.load().then((data) => {
			const root = document.getElementById('re6st-overview');
			if (root) root.replaceWith(this.build(data));
		});
	},

	build: function(data) {
		const [ st, info, reg, services ] = data;
		const s = st.running ? st.status : {};
		const service = serviceState(services);
		const now = Date.now() / 1000;
		const serviceBadge = {
			running: badge(_('running'), 'success'),
			registering: badge(_('registering'), 'notice'),
			stopped: badge(_('stopped'), 'warning')
		}[service];
		const button = (label, cls, fn) => E('button', {
			'class': 'cbi-button ' + cls, 'click': ui.createHandlerFn(this, fn)
		}, [ label ]);

		const registered = info.state === 'registered' || info.state === 'expired';
		let progress = null;
		if (reg.state === 'running')
			progress = E('span', { 'class': 'spinning' }, [ STEPS[reg.step] || reg.step ]);
		else if (reg.state === 'failed')
			progress = badge(_('failed (exit %d): %s').format(reg.exit, reg.error), 'danger');
		const days = info.not_after ? Math.floor((info.not_after - now) / DAY) : null;

		const tunnels = (s.tunnels || []).map((t) => [
			t.peer, t.address,
			t.direction === 'client' ? _('outgoing') : _('incoming'),
			{ direct: _('direct'), mapped: _('port mapping'), punched: _('hole punched') }[t.kind] || dash(t.kind),
			badge(t.state, t.state === 'up' ? 'success' : (t.state === 'connecting' ? 'notice' : '')),
			duration(t.age_s),
			t.rtt_ms === null ? null : t.rtt_ms.toFixed(1) + ' ms',
			t.loss === null ? null : Math.round(t.loss * 100) + ' %',
			'↓ ' + bytes(t.rx_bytes) + ' ↑ ' + bytes(t.tx_bytes)
		]);
		const babel = s.babel || {};
		const neighbours = (babel.neighbours || []).map((n) => [
			n.address, n.tunnel !== null ? _('tunnel %s').format(n.tunnel) : n.interface,
			n.reach, n.rxcost, n.txcost, n.cost, n.rtt_ms === null ? null : n.rtt_ms.toFixed(1) + ' ms'
		]);
		const routes = (babel.routes || []).map((r) => [
			r.prefix, r.from, r.metric,
			r.tunnel !== null ? _('tunnel %s').format(r.tunnel) : r.interface, r.next_hop
		]);
		const lanNodes = [];
		(s.babel_interfaces || []).forEach((l) => (l.nodes || []).forEach((n) =>
			lanNodes.push([ l.interface, n.prefix, n.address ])));

		return E('div', { 'id': 're6st-overview' }, [
			E('div', {}, health(st, info, service).map(([ sev, text ]) =>
				E('div', { 'class': 'alert-message ' + sev }, [ text ]))),
			card(_('Service'), [
				[ _('State'), serviceBadge ],
				[ _('Control'), E('div', {}, [
					button(_('Start'), 'cbi-button-apply', () => this.serviceAction('start')), ' ',
					button(_('Restart'), 'cbi-button-reload', () => this.serviceAction('restart')), ' ',
					button(_('Stop'), 'cbi-button-reset', () => this.serviceAction('stop'))
				]) ]
			]),
			card(_('Registration'), [
				[ _('State'), badge({
					registered: _('registered'), expired: _('expired'),
					none: _('not registered'), broken: _('broken')
				}[info.state] || dash(info.state), info.state === 'registered' ? 'success' : 'warning') ],
				info.error ? [ _('Why'), info.error ] : null,
				registered ? [ _('Prefix'), info.prefix ] : null,
				registered ? [ _('Address'), info.address ] : null,
				registered ? [ _('Network'), info.network ] : null,
				registered ? [ _('Certificate valid until'), _('%s (%d days left)').format(info.expires, days) ] : null,
				registered ? [ _('Renewal from'), info.renew_from ] : null,
				info.ca_fingerprint ? [ _('CA fingerprint'), E('code', {}, [ info.ca_fingerprint ]) ] : null,
				progress ? [ _('Registration'), progress ] : null,
				[ _('Actions'), E('div', {}, [
					registered ? '' : button(_('Register now'), 'cbi-button-action', () => this.serviceAction('restart')),
					st.running ? button(_('Renew now'), 'cbi-button-action', () => this.renew()) : ''
				]) ],
				registered ? null : [ _('E-mail enrolment'),
					_('The registry mails a token: paste it into Settings → Registry → Token and save.') ]
			]),
			st.running ? card(_('Node'), [
				[ _('Uptime'), duration(s.uptime_s) ],
				[ _('Version'), s.version ],
				[ _('Network config version'), s.network_config_version ],
				[ _('Registry'), s.registry ? s.registry.url : _('none') ],
				s.registry ? [ _('Last answer'), s.registry.last_ok_s === null ? _('never') : _('%s ago').format(duration(s.registry.last_ok_s)) ] : null,
				s.registry && s.registry.last_error ? [ _('Last error'), s.registry.last_error ] : null,
				[ _('Public addresses'), (s.public_addresses || []).join(', ') ],
				[ _('Reachable from outside'), s.reachable ? _('yes') : _('not yet') ],
				s.nat ? [ _('NAT'), natLine(s.nat) ] : null,
				[ _('Peer cache'), _('%d peers').format((s.peer_cache || {}).size || 0) ],
				[ _('Dropped packets'), s.dropped_packets ]
			]) : card(_('Node'), [ [ _('State'), _('not running') ] ]),
			st.running ? E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Neighbourhood') ]), neighbourhood(s)
			]) : '',
			st.running ? E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Tunnels') ]),
				table([ _('Peer'), _('Endpoint'), _('Direction'), _('Kind'), _('State'), _('Age'), _('RTT'), _('Loss'), _('Traffic') ],
					tunnels, _('No tunnel'))
			]) : '',
			st.running ? E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Babel neighbours') ]),
				table([ _('Address'), _('Link'), _('Reach'), _('RX cost'), _('TX cost'), _('Cost'), _('RTT') ],
					neighbours, _('No neighbour'))
			]) : '',
			st.running ? E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Routes') ]),
				table([ _('Prefix'), _('From'), _('Metric'), _('Via'), _('Next hop') ], routes, _('No route'))
			]) : '',
			st.running ? E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('LAN nodes') ]),
				table([ _('Interface'), _('Prefix'), _('Address') ], lanNodes, _('No node met on a LAN'))
			]) : ''
		]);
	},

	render: function(data) {
		poll.add(() => this.refresh(), 5);
		return E('div', {}, [
			E('h2', {}, [ _('re6st') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('This router\'s node of the re6st IPv6 overlay network.') ]),
			this.build(data)
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
