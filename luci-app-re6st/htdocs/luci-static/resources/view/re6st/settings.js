'use strict';
'require view';
'require form';
'require rpc';
'require uci';
'require tools.widgets as widgets';

// Every option of /etc/config/re6st, as the daemon lists them (`options`:
// name, kind, default, help), in three tabs. Before a save the candidate
// values go to the daemon's own check (`check`), and an error names the
// option; nothing is saved then. The memory-dependent options show this
// board's defaults (`board`), which the service uses when they are unset.

const callOptions = rpc.declare({ object: 'luci.re6st', method: 'options', expect: { options: [] } });
const callBoard = rpc.declare({ object: 'luci.re6st', method: 'board', expect: { defaults: {} } });
const callCheck = rpc.declare({ object: 'luci.re6st', method: 'check', params: [ 'values' ], expect: { '': {} } });

const TABS = {
	registry: [ 'registry', 'token', 'email', 'anonymous', 'fingerprint', 'registry_ca' ],
	network: [ 'port', 'peer', 'ip', 'port_mapping', 'lan', 'ra', 'rdnss', 'babel_interface', 'gateway', 'interface' ]
	// everything else: advanced
};
// Interfaces picked from the router's devices.
const DEVICES = [ 'lan', 'babel_interface' ];

return view.extend({
	load: function() {
		return Promise.all([ callOptions(), L.resolveDefault(callBoard(), {}), uci.load('re6st') ]);
	},

	render: function(data) {
		const [ options, board ] = data;
		const m = new form.Map('re6st', _('re6st settings'),
			_('Saved settings restart the node. Each option is checked by the node itself before it is saved.'));
		const s = m.section(form.TypedSection, 'node');
		s.anonymous = true;
		s.addremove = false;
		s.tab('registry', _('Registry'));
		s.tab('network', _('Network'));
		s.tab('advanced', _('Advanced'));

		const tabOf = (name) => TABS.registry.includes(name) ? 'registry' :
			(TABS.network.includes(name) ? 'network' : 'advanced');
		const ordered = options.slice().sort((a, b) => {
			const order = (o) => { const t = tabOf(o.name); return t === 'advanced' ? 1e3 : TABS[t].indexOf(o.name); };
			return order(a) - order(b);
		});
		ordered.forEach((opt) => {
			const tab = tabOf(opt.name);
			let o;
			if (DEVICES.includes(opt.name)) {
				o = s.taboption(tab, widgets.DeviceSelect, opt.name, opt.name, opt.help);
				o.multiple = true;
				o.noaliases = true;
			} else if (opt.kind === 'bool') {
				o = s.taboption(tab, form.Flag, opt.name, opt.name, opt.help);
				o.default = opt.default;
			} else if (opt.kind === 'list') {
				o = s.taboption(tab, form.DynamicList, opt.name, opt.name, opt.help);
			} else if (opt.name === 'log_level') {
				o = s.taboption(tab, form.ListValue, opt.name, opt.name, opt.help);
				[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach((l) => o.value(l));
				o.default = opt.default;
			} else {
				o = s.taboption(tab, form.Value, opt.name, opt.name, opt.help);
				// Memory-dependent options default to this board's values.
				o.placeholder = board[opt.name] || opt.default;
				if (opt.kind === 'number') o.datatype = 'uinteger';
				if (opt.name === 'token') o.password = true;
			}
			o.rmempty = true;
		});
		this.map = m;
		return m.render();
	},

	// Map.save parses the form into uci's staged changes, then runs this
	// before it writes anything: the daemon checks the candidate section,
	// and a rejection stops the save with the message shown.
	check: function() {
		const sid = (uci.sections('re6st', 'node')[0] || {})['.name'];
		const section = sid ? uci.get('re6st', sid) : {};
		const values = {};
		for (const k in section)
			if (k.charAt(0) !== '.') values[k] = section[k];
		return callCheck(values).then((r) => {
			if (!r.ok)
				throw new Error(r.option ? _('%s: %s').format(r.option, r.error) : r.error);
		});
	},

	handleSave: function(ev) {
		return this.map.save(() => this.check());
	}
});
